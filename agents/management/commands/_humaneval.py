"""`manage.py gryphgen bench humaneval`: HumanEval through the running stack (see agents/humaneval.py).

It uses the stack the settings name (DATABASE_URL, REDIS_URL, GRYPHGEN_LLM_URL, as `make run`
starts them) and needs Celery workers; `bench/humaneval.py` starts a private stack and runs this.
"""

import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import kombu.exceptions
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError

from agents import humaneval, policy, sandbox
from agents.models import AgentCall, Mode, Project, Task
from gryphgen_site.local_secrets import redacted


def add_arguments(parser) -> None:
    parser.add_argument(
        "--mode", action="append", required=True,
        help=f"mode(s) to run, comma-separated or repeated: {', '.join(Mode.values)}; MODE@MODEL runs the "
        "generator on another model of the roster (e.g. single@large)",
    )  # fmt: skip
    parser.add_argument(
        "--suite", choices=("humaneval", "owner"), default="humaneval",
        help="HumanEval, or the owner-request suite (agents/data/owner_requests.json)",
    )  # fmt: skip
    parser.add_argument("--split", choices=humaneval.SPLITS, default="test", help="dev: even task numbers, test: odd")
    parser.add_argument(
        "--limit", type=int, help="the first N problems of the split (routine: --split test --limit 40)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="tasks in flight at once")
    parser.add_argument("--max-rounds", type=int, help="rounds per task (single mode always runs one)")
    parser.add_argument("--budget-tokens", type=int, help="token budget per task (> 0)")
    parser.add_argument("--budget-seconds", type=int, help="wall-time budget per task (> 0)")
    parser.add_argument(
        "--memory", action="store_true",
        help="memory on: solutions and lessons of earlier --memory runs reach the prompts (never the same problem)",
    )  # fmt: skip
    parser.add_argument(
        "--variant", action="store_true",
        help=f"ask each problem again under a new name (entry point + {humaneval.VARIANT_SUFFIX!r}); with --memory, "
        "the original's accepted solution may be recalled: memory on repeated work",
    )  # fmt: skip
    parser.add_argument("--out", help="directory for the results (default: <GRYPHGEN_VAR_DIR>/humaneval)")
    parser.add_argument("--resume", action="store_true", help="continue the results in --out")
    parser.add_argument("--fresh", action="store_true", help="replace the results in --out")
    parser.add_argument("--task-timeout", type=int, default=1800, help="seconds before a task counts as failed")
    parser.add_argument("--max-consecutive-errors", type=int, default=3, help="stop after this many errors in a row")
    parser.add_argument("--doc", action="store_true", help="write the summary into docs/benchmarks.md")


def parse_modes(values: list) -> list:
    """Mode specs: a mode, or MODE@MODEL for the generator on another model of the roster."""
    modes = [m.strip() for value in values for m in value.split(",") if m.strip()]
    if not modes:
        raise CommandError(f"--mode is empty; choose from: {', '.join(Mode.values)}.")
    for spec in modes:
        mode, _, model = spec.partition("@")
        if mode not in Mode.values:
            raise CommandError(f"Unknown mode {mode!r}; choose from: {', '.join(Mode.values)}.")
        if "@" in spec and model not in settings.GRYPHGEN_MODELS:
            raise CommandError(
                f"Unknown model {model!r} in {spec!r}; choose from: {', '.join(settings.GRYPHGEN_MODELS)}."
            )
    return list(dict.fromkeys(modes))


def check_numbers(options: dict) -> None:
    for name in ("budget_tokens", "budget_seconds", "max_rounds"):
        if options[name] is not None and options[name] <= 0:
            flag = "--" + name.replace("_", "-")
            raise CommandError(f"{flag} must be greater than 0, not {options[name]} (leave it out for no limit).")
    for name in ("concurrency", "task_timeout", "max_consecutive_errors"):
        if options[name] <= 0:
            raise CommandError(f"--{name.replace('_', '-')} must be greater than 0, not {options[name]}.")
    if options["resume"] and options["fresh"]:
        raise CommandError("--resume and --fresh exclude each other.")


def check_stack() -> None:
    """Database, Celery workers, an LLM endpoint and the scoring sandbox, each with a clear message."""
    from gryphgen_site.celery import app as celery_app

    try:
        Task.objects.exists()
    except DatabaseError as exc:
        raise CommandError(f"The database does not answer or is not migrated ({exc}); start the stack first.") from exc
    if not celery_app.conf.task_always_eager:
        try:
            replies = celery_app.control.ping(timeout=2.0)
        except (OSError, kombu.exceptions.OperationalError) as exc:
            raise CommandError(f"The broker at {redacted(settings.REDIS_URL)} does not answer: {exc}") from exc
        if not replies:
            raise CommandError(
                "No Celery worker answered; start the stack (`make run` or `manage.py gryphgen up`) "
                "or run `bench/humaneval.py`, which starts a private one."
            )
    for model in sorted(set(settings.GRYPHGEN_ROSTER.values())):
        urls = settings.GRYPHGEN_MODELS[model]["urls"]
        if not any(_answers_http(url) for url in urls):
            raise CommandError(f"No LLM server of the {model} model answers at {', '.join(urls)}; start it first.")
    result = sandbox.run({}, [f"{sandbox.JAIL_RUNTIME}/bin/python", "-c", "pass"])
    if result.status != "passed":
        raise CommandError(f"The sandbox cannot score on this host ({result.status}): {result.stderr[-300:]}")


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, just not to /health
    except (urllib.error.URLError, OSError):
        return False


def command_line(options: dict, modes: list) -> str:
    parts = ["manage.py gryphgen bench humaneval", f"--mode {','.join(modes)}", f"--split {options['split']}"]
    if options["suite"] != "humaneval":
        parts.append(f"--suite {options['suite']}")
    for name in ("limit", "concurrency", "max_rounds", "budget_tokens", "budget_seconds"):
        if options[name] is not None:
            parts.append(f"--{name.replace('_', '-')} {options[name]}")
    parts += [flag for flag in ("--variant", "--memory", "--resume", "--fresh") if options[flag[2:]]]
    return " ".join(parts)


def header(mode: str, options: dict, selection: list, command: str) -> dict:
    from agents.models import ONE_ROUND_MODES

    rounds = 1 if mode.partition("@")[0] in ONE_ROUND_MODES else options["max_rounds"] or settings.GRYPHGEN_MAX_ROUNDS
    return {
        "benchmark": options["suite"],
        "mode": mode,
        "split": options["split"],
        "selection": selection,
        "settings": {
            "max_rounds": rounds,
            "budget_tokens": options["budget_tokens"] or settings.GRYPHGEN_BUDGET_TOKENS,
            "budget_seconds": options["budget_seconds"] or settings.GRYPHGEN_BUDGET_SECONDS,
            "memory": options["memory"],
            **({"variant": True} if options["variant"] else {}),  # absent otherwise: older results resume
        },
        "machine": humaneval.machine(),
        "command": command,
    }


def run_name(options: dict) -> str:
    """The split, marked for the suite, variants, memory, a generator prompt other than ours, the
    monitor's cases kept whole and roles moved off the default roster: different runs of one split
    never share a file."""
    from gryphgen_site.settings import DEFAULT_ROSTER

    prompt = settings.GRYPHGEN_GENERATOR_PROMPT
    moved = "".join(
        f"-{role}-{model}" for role, model in settings.GRYPHGEN_ROSTER.items() if DEFAULT_ROSTER.get(role) != model
    )
    return (
        ("owner-" if options.get("suite") == "owner" else "")
        + options["split"]
        + ("-variant" if options["variant"] else "")
        + ("-memory" if options["memory"] else "")
        + ("" if prompt == "gryphgen" else f"-prompt-{prompt}")
        + ("" if settings.GRYPHGEN_CONSENSUS_SET_ASIDE else "-set-aside-off")
        + moved
    )


def bench_project(mode: str, memory: bool) -> Project:
    """A project of the benchmark's own, per mode. Memory runs belong to the user `bench-memory`,
    whose memory holds only what earlier memory runs accepted; the others to `bench`, memory off."""
    from django.contrib.auth import get_user_model

    owner, created = get_user_model().objects.get_or_create(username="bench-memory" if memory else "bench")
    if created:
        owner.set_unusable_password()
        owner.save(update_fields=["password"])
    project, _ = Project.objects.update_or_create(
        owner=owner, name=f"humaneval-{mode}", defaults={"use_memory": memory}, create_defaults={
            "default_mode": mode.partition("@")[0], "use_memory": memory},
    )  # fmt: skip
    policy.follow_settings(project)
    return project


def models_used(files: dict) -> str:
    task_ids = [row["task"] for f in files.values() for row in f.rows.values()]
    names = AgentCall.objects.filter(task_id__in=task_ids, error="").exclude(model="").values_list("model", flat=True)
    return ", ".join(sorted({Path(name).name for name in names})) or "unknown"  # llama-server reports a path


def run(command, options: dict) -> None:
    modes = parse_modes(options["mode"])
    check_numbers(options)
    if options["suite"] == "owner":
        from agents import owner_requests

        problems = owner_requests.load_problems()
    else:
        problems = humaneval.load_problems()
    if options["variant"]:
        problems = {pid: humaneval.variant(problem) for pid, problem in problems.items()}
    try:
        selection = humaneval.select(problems, options["split"], options["limit"])
    except humaneval.BenchmarkError as exc:
        raise CommandError(str(exc)) from exc
    check_stack()
    out = Path(options["out"] or settings.VAR_DIR / "humaneval")
    line = command_line(options, modes)
    try:
        files = {
            mode: humaneval.ResultFile.open(
                out / f"{mode}-{run_name(options)}.json", header(mode, options, selection, line),
                resume=options["resume"], fresh=options["fresh"],
            )
            for mode in modes
        }  # fmt: skip
    except humaneval.BenchmarkError as exc:
        raise CommandError(str(exc)) from exc
    projects = {mode: bench_project(mode, options["memory"]) for mode in modes}
    requests = {}

    def submit(problem_id, mode):
        if problem_id not in requests:
            requests[problem_id] = humaneval.build_request(problems[problem_id])[0]
        try:
            key = problem_id + (" variant" if options["variant"] else "")  # the original stays recallable
            return submit_task(projects[mode], requests[problem_id], mode, options, key)
        except ValidationError as exc:
            raise humaneval.BenchmarkError(f"{problem_id} was refused: {'; '.join(exc.messages)}") from exc

    total = len(selection) * len(modes)
    done = [sum(len(f.rows) for f in files.values())]

    def report(item, row):
        done[0] += 1
        verdict = command.style.SUCCESS("pass") if row["pass"] else command.style.ERROR("fail")
        command.stdout.write(
            f"[{done[0]}/{total}] {item.mode:<12} {item.problem_id:<14} {verdict}  {row['status']}"
            f"{'/' + row['stop_reason'] if row['stop_reason'] not in ('', row['status']) else ''}, {row['rounds']} round(s), "
            f"{row['tokens']} tokens, {row['wall_seconds']} s"
        )

    bench = humaneval.Benchmark(
        problems, files, submit, concurrency=options["concurrency"], task_timeout=options["task_timeout"],
        max_consecutive_errors=options["max_consecutive_errors"], report=report,
        poll_seconds=0.05 if _eager() else 1.0,
    )  # fmt: skip
    command.stdout.write(
        f"HumanEval {options['split']}: {len(selection)} problems × {', '.join(modes)}; results in {out}"
    )
    stopped = ""
    try:
        bench.run()
    except humaneval.BenchmarkError as exc:
        stopped = str(exc)
    except KeyboardInterrupt:
        stopped = "Interrupted; tasks still in flight are recorded. Rerun with --resume to continue."
    finish(command, options, files, selection, out, stopped)


def submit_task(project, request, spec, options, memory_key):
    from agents.services import submit_task as submit

    mode, _, model = spec.partition("@")
    return submit(
        project, request, mode=mode, max_rounds=options["max_rounds"],
        budget_tokens=options["budget_tokens"], budget_seconds=options["budget_seconds"], memory_key=memory_key,
        generator_model=model,
    )  # fmt: skip


def _eager() -> bool:
    from gryphgen_site.celery import app as celery_app

    return bool(celery_app.conf.task_always_eager)


def finish(command, options, files, selection, out, stopped) -> None:
    """Write the files (partial where unfinished), the summary and the plot; raise if it stopped."""
    model = models_used(files)
    for result in files.values():
        result.data["model"] = model
        result.save(partial_reason=stopped or "")
    baseline = files.get(Mode.SINGLE)
    baseline_rows = baseline.rows if baseline else _stored_rows(out / f"single-{run_name(options)}.json")
    modes = humaneval.summarize(files, baseline_rows, selection)
    first = next(iter(files.values())).data
    suite = "owner requests" if options["suite"] == "owner" else "HumanEval"
    title = f"{suite} {options['split']} ({len(selection)} problems)"
    picture = humaneval.plot(modes, out / f"humaneval-{run_name(options)}.png", title)
    summary = {
        "benchmark": options["suite"], "split": options["split"], "problems": len(selection), "model": model,
        "machine": first["machine"], "date": datetime.now(UTC).strftime("%Y-%m-%d"), "command": first["command"],
        "concurrency": options["concurrency"], "settings": first["settings"],
        "max_rounds": max(f.data["settings"]["max_rounds"] for f in files.values()), "partial": any(m["partial"] for m in modes.values()),
        "stopped": stopped, "modes": modes, "plot": str(picture),
    }  # fmt: skip
    humaneval.write_json(out / f"summary-{run_name(options)}.json", summary)
    command.stdout.write(table(modes))
    command.stdout.write(f"summary: {out / ('summary-' + run_name(options) + '.json')}; plot: {picture}")
    if options["doc"]:
        write_doc(summary, picture, run_name(options))
    if stopped:
        raise CommandError(f'{stopped} Partial results (marked "partial": true) are in {out}.')


def _stored_rows(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return humaneval.ResultFile._read(path)["problems"]
    except humaneval.BenchmarkError:
        return None


def _ci(values) -> str:
    return f"{values[0]:.2f} to {values[1]:.2f}" if values else "n/a"


def table_rows(modes: dict) -> list:
    rows = []
    for mode, m in modes.items():
        vs = m.get("vs_single")
        wrong = m.get("accepted_wrong_share")
        by_model = m.get("tokens_per_problem_by_model") or {}
        rows.append([
            mode + (" (partial)" if m["partial"] else ""),
            f"{m['passed']}/{m['done']}",
            f"{m['pass_at_1']:.2f} ({_ci(m['ci95'])})" if m["pass_at_1"] is not None else "n/a",
            f"{vs['difference']:+.2f} ({_ci(vs['ci95'])}, {vs['problems']} paired)" if vs else "—",
            f"{m.get('best_code', m['passed'])}/{m['done']}",
            f"{m['seconds_per_problem']} ({m.get('busy_seconds_per_problem', 'n/a')})"
            if m["seconds_per_problem"] is not None
            else "n/a",
            ", ".join(f"{short_model(name)} {count}" for name, count in by_model.items()) or "n/a",
            f"{m['escalated_share']:.0%}" if m.get("escalated_share") is not None else "n/a",
            f"{m['accepted_wrong']}/{m['accepted']} ({wrong:.0%})" if wrong is not None else "0/0",
        ])  # fmt: skip
    return rows


def short_model(name: str) -> str:
    """`qwen2.5-coder-1.5b-instruct-q4_k_m.gguf` -> `1.5b`: the size is what tells them apart."""
    for part in name.lower().replace("_", "-").split("-"):
        if part[:1].isdigit() and part.endswith(("b", "m")):
            return part
    return name


HEADINGS = [
    "mode", "solved", "pass@1 (95% CI)", "Δ pass@1 vs single (95% CI)", "best code", "s / problem (busy)",
    "tokens / problem by model", "escalated", "accepted but wrong",
]  # fmt: skip


def table(modes: dict) -> str:
    lines = ["| " + " | ".join(HEADINGS) + " |", "|" + "---|" * len(HEADINGS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(modes)]
    return "\n".join(lines)


def write_doc(summary: dict, picture: Path, name: str) -> None:
    """The run's own section of docs/benchmarks.md (`humaneval-<run name>`), with its plot."""
    from bench.report import DOC, write_section

    image = DOC.parent / f"humaneval-{name}.png"
    shutil.copyfile(picture, image)
    s = summary["settings"]
    budgets = ", ".join(f"{k.split('_')[1]} budget {s[k]}" for k in ("budget_tokens", "budget_seconds") if s[k])
    partial = (
        f"\n**Partial:** not every selected problem finished ({summary['stopped'] or 'stopped early'}); "
        "the table covers the problems that did.\n"
        if summary["partial"]
        else ""
    )
    suite = "owner requests" if summary["benchmark"] == "owner" else "HumanEval"
    write_section(
        f"humaneval-{name}",
        f"""## {suite}, `{name}` (`manage.py gryphgen bench humaneval`)

{summary["date"]}, {summary["machine"]}, models `{summary["model"]}`; split `{summary["split"]}`,
{summary["problems"]} problems, concurrency {summary["concurrency"]}, at most {summary["max_rounds"]} rounds per task
(single and consensus: 1){", " + budgets if budgets else ""}. Command: `{summary["command"]}`.
{partial}
{table(summary["modes"])}

![{suite}: pass@1 by mode, and pass@1 against seconds per problem]({image.name})

Each problem ran as a real task (Celery, PostgreSQL, llama-server, sandbox) in a benchmark
project of its own. The request's examples (or the Task Monitor's tests) were the verdict tests;
the hidden check ran only afterwards, in a scoring sandbox run, so nothing of it reached an agent.
**Solved** counts a task only when it was accepted (deployed) and its code passes the hidden
check; **best code** counts the final code of every task, accepted or not. Δ is the paired
difference against `single` (the small model) on the same problems (10,000 bootstrap resamples
of the problems, fixed seed). Seconds per problem: mean task wall time, start to finish, with
{summary["concurrency"]} tasks sharing the machine; in brackets the busy seconds, the task's own
model-call and sandbox time, which leaves out time spent queued behind other tasks. **Accepted but wrong**: accepted by the verdict
tests, failed by the hidden check, over all accepted. Memory: {"on" if s["memory"] else "off"}.
""",
    )
