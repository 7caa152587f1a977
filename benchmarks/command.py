"""`manage.py gryphgen bench humaneval`: HumanEval or the owner requests through the running stack.

It uses the stack the settings name (DATABASE_URL, REDIS_URL, GRYPHGEN_LLM_URL, as `make run`
starts them) and needs Celery workers; `bench/humaneval.py` starts a private stack and runs this.
"""

import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import kombu.exceptions
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError

from agents import policy, sandbox
from agents.models import AgentCall, Mode, Project, Task
from benchmarks import BenchmarkError, plots, problems, report, runner, statistics, task_request
from gryphgen_site.local_secrets import redacted


def add_arguments(parser) -> None:
    parser.add_argument(
        "--mode", action="append", required=True,
        help=f"mode(s) to run, comma-separated or repeated: {', '.join(Mode.values)}; MODE@MODEL runs the "
        "generator on another model of the roster (e.g. single@large)",
    )  # fmt: skip
    parser.add_argument(
        "--suite", choices=problems.SUITES, default="humaneval",
        help="HumanEval, or the owner-request suite (benchmarks/data/owner_requests.json)",
    )  # fmt: skip
    parser.add_argument("--split", choices=problems.SPLITS, default="test", help="dev: even task numbers, test: odd")
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
        help=f"ask each problem again under a new name (entry point + {problems.VARIANT_SUFFIX!r}); with --memory, "
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
    if options["variant"] and options["suite"] != "humaneval":
        raise CommandError("--variant renames HumanEval's functions; the owner-request suite has no variants.")


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
        "machine": runner.machine(),
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
    suite = problems.load(options["suite"])
    if options["variant"]:
        suite = {pid: problems.variant(problem) for pid, problem in suite.items()}
    try:
        selection = problems.select(suite, options["split"], options["limit"])
    except BenchmarkError as exc:
        raise CommandError(str(exc)) from exc
    check_stack()
    out = Path(options["out"] or settings.VAR_DIR / "humaneval")
    line = command_line(options, modes)
    try:
        files = {
            mode: runner.ResultFile.open(
                out / f"{mode}-{run_name(options)}.json", header(mode, options, selection, line),
                resume=options["resume"], fresh=options["fresh"],
            )
            for mode in modes
        }  # fmt: skip
    except BenchmarkError as exc:
        raise CommandError(str(exc)) from exc
    projects = {mode: bench_project(mode, options["memory"]) for mode in modes}
    requests = {}

    def submit(problem_id, mode):
        if problem_id not in requests:
            requests[problem_id] = task_request.build_request(suite[problem_id])[0]
        try:
            key = problem_id + (" variant" if options["variant"] else "")  # the original stays recallable
            return submit_task(projects[mode], requests[problem_id], mode, options, key)
        except ValidationError as exc:
            raise BenchmarkError(f"{problem_id} was refused: {'; '.join(exc.messages)}") from exc

    total = len(selection) * len(modes)
    done = [sum(len(f.rows) for f in files.values())]

    def print_row(item, row):
        done[0] += 1
        verdict = command.style.SUCCESS("pass") if row["pass"] else command.style.ERROR("fail")
        command.stdout.write(
            f"[{done[0]}/{total}] {item.mode:<12} {item.problem_id:<14} {verdict}  {row['status']}"
            f"{'/' + row['stop_reason'] if row['stop_reason'] not in ('', row['status']) else ''}, {row['rounds']} round(s), "
            f"{row['tokens']} tokens, {row['wall_seconds']} s"
        )

    bench = runner.Benchmark(
        suite, files, submit, concurrency=options["concurrency"], task_timeout=options["task_timeout"],
        max_consecutive_errors=options["max_consecutive_errors"], report=print_row,
        poll_seconds=0.05 if _eager() else 1.0,
    )  # fmt: skip
    command.stdout.write(
        f"HumanEval {options['split']}: {len(selection)} problems × {', '.join(modes)}; results in {out}"
    )
    stopped = ""
    try:
        bench.run()
    except BenchmarkError as exc:
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
    modes = statistics.summarize(files, baseline_rows, selection)
    first = next(iter(files.values())).data
    suite = "owner requests" if options["suite"] == "owner" else "HumanEval"
    title = f"{suite} {options['split']} ({len(selection)} problems)"
    picture = plots.plot(modes, out / f"humaneval-{run_name(options)}.png", title)
    summary = {
        "benchmark": options["suite"], "split": options["split"], "problems": len(selection), "model": model,
        "machine": first["machine"], "date": datetime.now(UTC).strftime("%Y-%m-%d"), "command": first["command"],
        "concurrency": options["concurrency"], "settings": first["settings"],
        "max_rounds": max(f.data["settings"]["max_rounds"] for f in files.values()), "partial": any(m["partial"] for m in modes.values()),
        "stopped": stopped, "modes": modes, "plot": str(picture),
    }  # fmt: skip
    runner.write_json(out / f"summary-{run_name(options)}.json", summary)
    command.stdout.write(report.table(modes))
    command.stdout.write(f"summary: {out / ('summary-' + run_name(options) + '.json')}; plot: {picture}")
    if options["doc"]:
        report.write_humaneval_section(summary, picture, run_name(options))
    if stopped:
        raise CommandError(f'{stopped} Partial results (marked "partial": true) are in {out}.')


def _stored_rows(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return runner.ResultFile.read(path)["problems"]
    except BenchmarkError:
        return None
