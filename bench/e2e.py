"""End-to-end benchmark: small requests through the whole stack with the bundled model.

Starts its own embedded PostgreSQL, Redis, llama-server (bundled Qwen2.5-Coder-0.5B) and a
Celery worker under var/bench/, submits each request as a real Task, waits, and reports per
task: wall time, time per stage, the LLM's share, orchestration overhead per step, tokens.
Prints JSON and rewrites the e2e section of docs/benchmarks.md.

    .venv/bin/python bench/e2e.py [--concurrency 2] [--rounds 2]
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from benchmarks.report import write_section  # noqa: E402
from benchmarks.stack import private_stack  # noqa: E402

BENCH_VAR = BASE / "var" / "bench"

REQUESTS = [
    "Write `slugify(text: str) -> str` that lowercases, replaces runs of non-alphanumerics with one hyphen "
    "and strips hyphens at both ends.\n\n>>> slugify(\"Hello, World!\")\n'hello-world'\n"
    ">>> slugify(\"  Many   spaces  \")\n'many-spaces'\n",
    "Write `is_palindrome(s: str) -> bool` that ignores case and non-letters.\n\n"
    '>>> is_palindrome("A man, a plan, a canal: Panama")\nTrue\n>>> is_palindrome("abc")\nFalse\n',
    "Write `running_sum(xs: list[int]) -> list[int]` returning the prefix sums.\n\n"
    ">>> running_sum([1, 2, 3])\n[1, 3, 6]\n>>> running_sum([])\n[]\n",
    "Write `count_vowels(text: str) -> int` counting a, e, i, o, u in either case.\n\n"
    '>>> count_vowels("Hello World")\n3\n>>> count_vowels("xyz")\n0\n',
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()

    with private_stack(BENCH_VAR, fresh=True, models=("small",), embedder=False, workers=args.concurrency * 2):
        result = run(args)
    print(json.dumps(result, indent=2))
    if not args.no_doc:
        write_doc(result)


def run(args):
    from django.contrib.auth import get_user_model

    from agents.models import Project, Task
    from agents.services import submit_task

    owner = get_user_model().objects.create_user("bench")
    project = Project.objects.create(owner=owner, name="bench")
    started = time.monotonic()
    pending = list(REQUESTS)
    active, done = [], []
    while pending or active:
        while pending and len(active) < args.concurrency:
            active.append(submit_task(project, pending.pop(0), max_rounds=args.rounds))
        time.sleep(0.5)
        for task in list(active):
            task.refresh_from_db()
            if task.is_finished:
                active.remove(task)
                done.append(task)
        if time.monotonic() - started > 3600:
            raise SystemExit("benchmark exceeded one hour")
    total = time.monotonic() - started
    tasks = [measure(Task.objects.get(pk=t.pk)) for t in done]
    llm_ms = sum(t["llm_ms"] for t in tasks)
    wall_ms = sum(t["wall_ms"] for t in tasks)
    return {
        "benchmark": "e2e",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": Path(os.environ["GRYPHGEN_MODEL_PATH"]).name,
        "concurrency": args.concurrency,
        "max_rounds": args.rounds,
        "total_seconds": round(total, 1),
        "accepted": sum(t["status"] == "accepted" for t in tasks),
        "tasks": tasks,
        "llm_share": round(llm_ms / wall_ms, 3) if wall_ms else None,
        "mean_overhead_ms_per_step": round(sum(t["overhead_ms_per_step"] for t in tasks) / len(tasks), 1),
        "tokens": sum(t["tokens"] for t in tasks),
    }


def measure(task):
    """Per task: wall time, time per stage (from the progress events), LLM and sandbox time, overhead."""
    events = list(task.events.order_by("id"))
    stage_ms = {}
    for before, after in zip(events, events[1:], strict=False):
        ms = (after.created - before.created).total_seconds() * 1000
        stage_ms[before.stage] = stage_ms.get(before.stage, 0) + ms
    calls = list(task.calls.all())
    llm_ms = sum(c.latency_ms for c in calls)
    sandbox_ms = sum(r.duration_ms for r in task.sandbox_runs.all())
    wall_ms = (task.finished - task.created).total_seconds() * 1000
    steps = 2 + 5 * task.checkpoints.count()  # route + plan + five steps per round
    return {
        "task": task.pk,
        "request": task.request.split("(")[0].replace("Write `", ""),
        "status": task.status,
        "rounds": task.checkpoints.count(),
        "wall_ms": round(wall_ms),
        "stage_ms": {k: round(v) for k, v in stage_ms.items()},
        "llm_ms": llm_ms,
        "sandbox_ms": sandbox_ms,
        "llm_share": round(llm_ms / wall_ms, 3),
        "overhead_ms_per_step": round(max(wall_ms - llm_ms - sandbox_ms, 0) / steps, 1),
        "calls": len(calls),
        "tokens": sum(c.prompt_tokens + c.completion_tokens for c in calls),
    }


def write_doc(result):
    rows = "\n".join(
        f"| {t['request']} | {t['status']} | {t['rounds']} | {t['wall_ms'] / 1000:.1f} | {t['llm_share']:.0%} "
        f"| {t['overhead_ms_per_step']:.0f} | {t['tokens']} |"
        for t in result["tasks"]
    )
    section = f"""## End to end (`bench/e2e.py`)

{result["date"]}, {result["machine"]}, model `{result["model"]}`, concurrency {result["concurrency"]},
at most {result["max_rounds"]} rounds. Command: `.venv/bin/python bench/e2e.py`.

| request | outcome | rounds | wall s | LLM share | overhead ms/step | tokens |
|---|---|---|---|---|---|---|
{rows}

Accepted {result["accepted"]}/{len(result["tasks"])} in {result["total_seconds"]} s; LLM share of task wall time
{result["llm_share"]:.0%}; orchestration overhead {result["mean_overhead_ms_per_step"]} ms per step (wall time
minus LLM and sandbox time, over the steps run; with two tasks in flight it includes time a step
waits for a free worker or llama-server slot); {result["tokens"]} tokens in all.
"""
    write_section("e2e", section)


if __name__ == "__main__":
    main()
