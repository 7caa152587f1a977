"""Throughput benchmark: how much of llama-server's concurrent throughput GRYPHGEN uses, and
what orchestration costs per step.

Starts its own embedded PostgreSQL, Redis and llama-server (bundled model, K slots) under
var/bench-throughput/, then, in one run:

1. GRYPHGEN: K small requests (doctest examples, pipeline mode, one round), each submitted
   twice with K in flight (the raw batch's work), to a Celery worker on that llama-server;
   completion tokens/second over the batch (first submit to last finish), and over only the
   time some LLM call was in flight;
2. raw: the prompts those tasks' generator calls send, by K threads straight to the same
   llama-server (the generator's max_tokens, temperature 0, no prompt cache); tokens/second.
   Raw and GRYPHGEN batches alternate (raw first and last, PAIRS GRYPHGEN batches); utilisation
   ratio = fastest GRYPHGEN batch's tokens/s / fastest raw batch's, since other work on a shared
   host only slows batches down;
3. overhead: N tasks, K at a time, on a worker pointed at the scripted LLM server (instant
   replies, scripted so every task is accepted; memory off, so every task works its round rather
   than reusing the first one's code); per task (wall time - LLM time - sandbox time) / steps,
   as bench/e2e.py measures it; mean and p95.

Prints JSON and rewrites the throughput section of docs/benchmarks.md.

    .venv/bin/python bench/throughput.py [--concurrency 2] [--tasks 20] [--no-doc]
    .venv/bin/python bench/throughput.py --overhead-only     # part 3 alone: JSON, no doc
"""

import argparse
import contextlib
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from bench.e2e import REQUESTS, measure  # noqa: E402
from benchmarks.report import write_section  # noqa: E402
from benchmarks.stack import private_stack  # noqa: E402
from gryphgen_site import stack  # noqa: E402
from tests.scripted_llm import ScriptedLLM  # noqa: E402

BENCH_VAR = BASE / "var" / "bench-throughput"
LOGS = BENCH_VAR / "log"

ROUNDS = 1  # no repair rounds: every task makes the same calls (generate, analyze, monitor)
RAW_REPEATS = 2  # each generator prompt is sent this many times in the raw batch
PAIRS = 3  # GRYPHGEN batches, each followed by a raw batch (and one raw batch before the first)
REAL_TIMEOUT_S = 600  # per GRYPHGEN batch
SCRIPTED_TIMEOUT_S_PER_TASK = 30
POLL_S = 0.2
# llama-server keeps prompts in host memory (--cache-ram) and hands them to a later identical
# prompt: off, or GRYPHGEN's generator calls would reuse the raw batch's prefill.
NO_PROMPT_STORE = ("--cache-ram", "0")
# The slugify request (REQUESTS[0]) and a reply that passes its doctest examples.
SCRIPT = {
    "generate": '```python\nimport re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower())'
    '.strip("-")\n```',
    "analyze": {"issues": [], "summary": "looks fine"},
    "monitor_verdict": {"aligned": True, "evidence": "tests pass"},
    "decide": {"decision": "accept", "reason": "all verdict tests pass"},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=2, help="K: tasks, raw threads and llama-server slots")
    parser.add_argument("--tasks", type=int, default=20, help="N: tasks in the overhead part (K at a time)")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--overhead-only", action="store_true", help="only part 3, the orchestration overhead (no llama-server; no doc)"
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, not {args.concurrency}")
    if args.tasks < 1:
        parser.error(f"--tasks must be at least 1, not {args.tasks}")
    return args


def main():
    args = parse_args()
    with contextlib.ExitStack() as cleanup:
        services = cleanup.enter_context(
            private_stack(
                BENCH_VAR, fresh=True, models=() if args.overhead_only else ("small",), llm_parallel=args.concurrency,
                llm_extra_args=NO_PROMPT_STORE, embedder=False, workers=0,
            )
        )  # fmt: skip
        result = {
            "benchmark": "throughput",
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "model": Path(os.environ["GRYPHGEN_MODEL_PATH"]).name,
            "concurrency": args.concurrency,
        }
        if not args.overhead_only:
            result.update(throughput_part(args.concurrency, services["llama-small"].process.pid))
        result["overhead"] = overhead_part(cleanup, args.tasks, args.concurrency)
    print(json.dumps(result, indent=2))
    if not (args.no_doc or args.overhead_only):
        write_doc(result)


@contextlib.contextmanager
def worker(name, llm_url, k, loglevel="WARNING"):
    """A Celery worker on all queues, 2K processes, whose LLM client sends every role to `llm_url`
    (the roster's large model too: this benchmark measures one llama-server)."""
    env = {"GRYPHGEN_LLM_URL": llm_url, "GRYPHGEN_LARGE_LLM_URL": llm_url}
    service = stack.start_worker(
        LOGS, name=name, concurrency=2 * k, hostname=f"{name}@%h", loglevel=loglevel, gossip=False, env=env
    )
    try:
        yield service
    finally:
        service.stop()


# --- running tasks -------------------------------------------------------------------------------


def make_projects(owner_name, count):
    """One project per task (one owner), so no task waits on another's workspace lock; memory off,
    so a repeated request is worked, not answered from an earlier task's accepted code."""
    from django.contrib.auth import get_user_model

    from agents.models import Project

    owner = get_user_model().objects.create_user(owner_name)
    return [Project.objects.create(owner=owner, name=f"{owner_name}-{i}", use_memory=False) for i in range(count)]


def run_tasks(owner_name, requests, in_flight, timeout_s):
    """Submit `requests` (pipeline mode), keeping `in_flight` running; return the finished Tasks."""
    from agents.models import Mode, Task
    from agents.services import submit_task

    projects = make_projects(owner_name, len(requests))
    pending = list(zip(projects, requests, strict=True))
    deadline = time.monotonic() + timeout_s
    active, done = [], []
    while pending or active:
        while pending and len(active) < in_flight:
            project, request = pending.pop(0)
            active.append(submit_task(project, request, mode=Mode.PIPELINE, max_rounds=ROUNDS))
        time.sleep(POLL_S)
        for task in list(active):
            task.refresh_from_db()
            if task.is_finished:
                active.remove(task)
                done.append(task)
        if time.monotonic() > deadline:
            stuck = ", ".join(f"#{t.pk} at {t.stage or t.status}" for t in active)
            raise SystemExit(f"tasks did not finish within {timeout_s}s: {stuck}; logs in {LOGS}")
    return [Task.objects.get(pk=t.pk) for t in done]


# --- part 1 and 2: GRYPHGEN against raw requests on one llama-server -------------------------------


def throughput_part(k, llama_pid):
    """Raw and GRYPHGEN batches in turn, raw first and last; the ratio compares the fastest of each.

    Other work on a shared host only ever slows a batch down, so the fastest batch of each kind is
    the one least disturbed; the cores llama-server got in each batch show how much it was."""
    url = os.environ["GRYPHGEN_LLM_URL"]
    requests = [REQUESTS[i % len(REQUESTS)] for i in range(k)]
    prompts = [round_one_generator_prompt(r) for r in requests]
    load = {"idle_stack": load_1min()}
    reset_slots(url, k)  # also the warm-up: no batch gets a cold first call
    raw = [raw_throughput(url, prompts, k, llama_pid)]
    gryphgen = []
    with worker("throughput-llama", url, k):
        for batch in range(1, PAIRS + 1):
            reset_slots(url, k)  # else GRYPHGEN's generator calls would find their prompts cached by a raw batch
            gryphgen.append(gryphgen_batch(f"real-{batch}", requests, prompts, k, llama_pid))
            raw.append(raw_throughput(url, prompts, k, llama_pid))
    load["end"] = load_1min()
    best_gryphgen, best_raw = fastest(gryphgen, "tokens_per_s"), fastest(raw, "tokens_per_s")
    best_generating = fastest(gryphgen, "generating_tokens_per_s")
    return {
        "load_1min": load,
        "gryphgen": gryphgen,
        "raw": raw,
        "best_gryphgen_tokens_per_s": best_gryphgen,
        "best_generating_tokens_per_s": best_generating,
        "best_raw_tokens_per_s": best_raw,
        "utilisation": round(best_gryphgen / best_raw, 3),
        "generating_utilisation": round(best_generating / best_raw, 3),
    }


def fastest(batches, key):
    return max(b[key] for b in batches)


def gryphgen_batch(owner_name, requests, prompts, k, llama_pid):
    """The K requests, each RAW_REPEATS times as the raw batch sends their prompts, K in flight on
    the running worker; throughput and llama-server's cores."""
    work = requests * RAW_REPEATS
    tasks, cores = llama_cores_during(llama_pid, lambda: run_tasks(owner_name, work, k, REAL_TIMEOUT_S))
    return {
        **gryphgen_throughput(tasks),
        "llama_cores": cores,
        "generator_prompts_as_replayed": generator_prompts(tasks) == prompts * RAW_REPEATS,
    }


def round_one_generator_prompt(request):
    """The messages GRYPHGEN's generator sends in round 1 for `request` (built by its own prompt code)."""
    from agents import prompts, verdict
    from agents.models import Task

    return prompts.generator_messages(Task(request=request, entry_point=verdict.entry_point(request)))


def load_1min():
    return round(os.getloadavg()[0], 2)


def llama_cores_during(pid, batch):
    """Run `batch()`; return its result and the cores llama-server used meanwhile (CPU s / wall s).

    On a shared host this shows whether each batch got the same CPU."""
    cpu, started = cpu_seconds(pid), time.monotonic()
    result = batch()
    return result, round((cpu_seconds(pid) - cpu) / (time.monotonic() - started), 2)


def cpu_seconds(pid):
    """User + system CPU time of process `pid`, all threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def gryphgen_throughput(tasks):
    """Completion tokens/s over the batch window and over the time some LLM call was in flight."""
    from agents.models import AgentCall

    calls = list(AgentCall.objects.filter(task__in=tasks).order_by("id"))
    tokens = sum(c.completion_tokens for c in calls)
    window_s = (max(t.finished for t in tasks) - min(t.created for t in tasks)).total_seconds()
    intervals = [(c.created - timedelta(milliseconds=c.latency_ms), c.created) for c in calls]
    busy_s = busy_seconds(intervals)
    llm_s = sum(c.latency_ms for c in calls) / 1000
    return {
        "tasks": [measure(t) for t in tasks],
        "accepted": sum(t.status == "accepted" for t in tasks),
        "calls": len(calls),
        "purposes": dict(sorted(Counter(c.purpose for c in calls).items())),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": tokens,
        "generator_completion_tokens": sum(c.completion_tokens for c in calls if c.role == "generator"),
        "batch_seconds": round(window_s, 2),
        "llm_busy_seconds": round(busy_s, 2),
        "llm_busy_share": round(busy_s / window_s, 3),
        "mean_calls_in_flight_while_busy": round(llm_s / busy_s, 2) if busy_s else None,
        "tokens_per_s": round(tokens / window_s, 2),
        "generating_tokens_per_s": round(tokens / busy_s, 2) if busy_s else None,
    }


def generator_prompts(tasks):
    """The messages each generator call of these tasks sent, in task order."""
    from agents.models import AgentCall

    calls = AgentCall.objects.filter(task__in=tasks, role=AgentCall.Role.GENERATOR).order_by("task_id", "id")
    return [c.prompt for c in calls]


def busy_seconds(intervals):
    """Length of the union of (start, end) datetime intervals, in seconds."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is not None and start < reach:
            start = reach
        if end > start:
            total += (end - start).total_seconds()
            reach = end if reach is None else max(reach, end)
    return total


def reset_slots(url, k):
    """A tiny request pinned to each llama-server slot, replacing whatever prompt that slot held."""
    for slot in range(k):
        raw_request(url, [{"role": "user", "content": "Say OK."}], max_tokens=2, id_slot=slot)


def raw_request(url, messages, max_tokens, **extra):
    """One chat completion straight to llama-server, as the generator role asks; its (prompt, completion) tokens."""
    import openai
    from django.conf import settings

    client = openai.OpenAI(
        base_url=url + "/v1", api_key="not-needed", timeout=settings.GRYPHGEN_LLM_TIMEOUT, max_retries=0
    )
    completion = client.chat.completions.create(
        model=settings.GRYPHGEN_MODELS["small"]["name"],
        messages=messages,
        temperature=0,
        max_tokens=max_tokens,
        seed=settings.GRYPHGEN_LLM_SEED,
        extra_body={"cache_prompt": False, **extra},  # a repeated prompt costs what it cost the first time
    )
    return completion.usage.prompt_tokens, completion.usage.completion_tokens


def raw_throughput(url, prompts, k, llama_pid):
    """K threads send every generator prompt RAW_REPEATS times; completion tokens/s over the batch."""
    from django.conf import settings

    max_tokens = settings.GRYPHGEN_ROLES["generator"]["max_tokens"]
    jobs = prompts * RAW_REPEATS
    started = time.monotonic()
    with ThreadPoolExecutor(k) as pool:  # each request has the LLM timeout as its deadline
        usage, cores = llama_cores_during(
            llama_pid, lambda: list(pool.map(lambda messages: raw_request(url, messages, max_tokens), jobs))
        )
    seconds = time.monotonic() - started
    completion_tokens = sum(c for _, c in usage)
    return {
        "requests": len(jobs),
        "threads": k,
        "max_tokens": max_tokens,
        "prompt_tokens": sum(p for p, _ in usage),
        "completion_tokens": completion_tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(completion_tokens / seconds, 2),
        "llama_cores": cores,
    }


# --- part 3: orchestration overhead with an instant LLM ---------------------------------------------


def overhead_part(cleanup, n, k):
    llm = ScriptedLLM()
    cleanup.callback(llm.stop)
    for purpose, reply in SCRIPT.items():
        llm.script(purpose, reply)
    log_path = LOGS / "throughput-scripted.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with worker("throughput-scripted", llm.url, k, loglevel="INFO"):
        tasks = run_tasks("scripted", [REQUESTS[0]] * n, k, SCRIPTED_TIMEOUT_S_PER_TASK * n)
    rows = [measure(t) for t in tasks]
    per_step = [r["overhead_ms_per_step"] for r in rows]
    with log_path.open() as log:
        log.seek(log_start)
        runtimes = celery_runtimes(log)
    in_steps = sum(sum(ms) for name, ms in runtimes.items() if name.startswith("agents.")) / n
    mean_wall = statistics.mean(r["wall_ms"] for r in rows)
    return {
        "tasks": n,
        "in_flight": k,
        "accepted": sum(r["status"] == "accepted" for r in rows),
        "mean_wall_ms": round(statistics.mean(r["wall_ms"] for r in rows)),
        "mean_llm_ms": round(statistics.mean(r["llm_ms"] for r in rows)),
        "mean_sandbox_ms": round(statistics.mean(r["sandbox_ms"] for r in rows)),
        "overhead_ms_per_step_mean": round(statistics.mean(per_step), 1),
        "overhead_ms_per_step_p95": p95(per_step),
        # Where a task's wall time goes: inside the workflow's Celery tasks (as the worker times
        # them), and between them (queueing, the hop through Redis, the pool handing a message to a
        # process); the guardians' tasks run beside the workflow on the same worker.
        "mean_in_steps_ms": round(in_steps),
        "mean_between_steps_ms": round(mean_wall - in_steps),
        "celery_tasks": {
            name: {"count": len(ms), "mean_ms": round(statistics.mean(ms), 1)} for name, ms in sorted(runtimes.items())
        },
    }


CELERY_DONE = re.compile(r"Task (\S+)\[[0-9a-f-]+\] succeeded in ([0-9.e-]+)s")


def celery_runtimes(lines):
    """Milliseconds per finished Celery task, by task name, from a worker's INFO log lines."""
    runtimes = {}
    for line in lines:
        if match := CELERY_DONE.search(line):
            runtimes.setdefault(match[1], []).append(float(match[2]) * 1000)
    return runtimes


def p95(values):
    """Nearest-rank 95th percentile."""
    return sorted(values)[max(0, math.ceil(0.95 * len(values)) - 1)]


# --- report ----------------------------------------------------------------------------------------


def completion_share(batch):
    return batch["completion_tokens"] / (batch["prompt_tokens"] + batch["completion_tokens"])


def write_doc(result):
    k, o, raw = result["concurrency"], result["overhead"], result["raw"]
    g = max(result["gryphgen"], key=lambda b: b["tokens_per_s"])  # the batch the ratio uses
    accepted = sum(b["accepted"] for b in result["gryphgen"])
    raw_cores = max(b["llama_cores"] for b in raw)
    section = f"""## Throughput (`bench/throughput.py`)

{result["date"]}, {result["machine"]}, model `{result["model"]}`; K = {k} tasks in flight, raw threads
and llama-server slots. Command: `.venv/bin/python bench/throughput.py --concurrency {k} --tasks {o["tasks"]}`.

One llama-server, batches in this order. GRYPHGEN: the same {k} requests, each {RAW_REPEATS} times, {k} tasks in
flight, pipeline mode, one round ({g["calls"]} LLM calls a batch: {", ".join(f"{n} {p}" for p, n in g["purposes"].items())};
{accepted}/{k * RAW_REPEATS * len(result["gryphgen"])} tasks accepted in all),
first submit to last finish. Raw: the {k} prompts GRYPHGEN's generator sends, × {RAW_REPEATS}, by {k} threads,
with its max_tokens and temperature 0. Neither side reuses the other's prefill (no prompt cache for raw
requests, llama-server's host prompt store off, slots overwritten before each GRYPHGEN batch).

| batch | seconds | prompt tokens | completion tokens | llama-server cores | completion tokens/s | while an LLM call was in flight |
|---|---|---|---|---|---|---|
{batch_rows(result)}

Utilisation ratio, fastest GRYPHGEN batch ÷ fastest raw batch ({result["best_gryphgen_tokens_per_s"]} ÷
{result["best_raw_tokens_per_s"]} tokens/s): **{result["utilisation"]:.2f}**; counting only the time an LLM call was
in flight: {result["generating_utilisation"]:.2f}. In that GRYPHGEN batch some LLM call was in flight
{g["llm_busy_share"]:.0%} of the time, {g["mean_calls_in_flight_while_busy"]} at a time on average (raw keeps {k});
llama-server got {g["llama_cores"]} cores against up to {raw_cores} in the raw batches (the worker,
database and sandbox share the host's cores), and completion tokens are {completion_share(g):.0%} of GRYPHGEN's
tokens against {completion_share(raw[0]):.0%} of raw's. The host is shared (1-minute load average {result["load_1min"]["idle_stack"]} before the batches,
{result["load_1min"]["end"]} after); other work only slows a batch, so the fastest batch of each kind is compared.

Orchestration overhead with the scripted LLM server (instant replies, every task accepted): {o["tasks"]} tasks,
{o["in_flight"]} at a time, {o["accepted"]} accepted. Per step (task wall time minus LLM and sandbox time, over the
steps as `bench/e2e.py` counts them): **{o["overhead_ms_per_step_mean"]} ms** mean, {o["overhead_ms_per_step_p95"]} ms
p95. A task took {o["mean_wall_ms"]} ms on average, of which {o["mean_sandbox_ms"]} ms sandbox and
{o["mean_llm_ms"]} ms in LLM calls (client and HTTP round trips); {o["mean_in_steps_ms"]} ms inside the workflow's
Celery tasks as the worker times them, {o["mean_between_steps_ms"]} ms between them (queueing, the hop through
Redis, the pool handing a message on). Per Celery task, mean ms (count): {step_times(o)}.
"""
    write_section("throughput", section)


def step_times(overhead):
    return ", ".join(
        f"{name.split('.')[-1]} {t['mean_ms']} ({t['count']})" for name, t in overhead["celery_tasks"].items()
    )


def batch_rows(result):
    """Table rows, raw and GRYPHGEN batches in the order they ran."""
    raw, gryphgen = result["raw"], result["gryphgen"]
    batches = [("raw", 1, raw[0])]
    for i, (g, r) in enumerate(zip(gryphgen, raw[1:], strict=True), 1):
        batches += [("GRYPHGEN", i, g), ("raw", i + 1, r)]
    return "\n".join(
        f"| {kind} {n} | {b.get('batch_seconds', b.get('seconds'))} | {b['prompt_tokens']} | {b['completion_tokens']} "
        f"| {b['llama_cores']} | {b['tokens_per_s']} | {b.get('generating_tokens_per_s', '')} |"
        for kind, n, b in batches
    )


if __name__ == "__main__":
    main()
