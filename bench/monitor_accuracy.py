"""How often the Task Monitor's expected values are right, on requests without examples.

HumanEval: for each dev problem (even task numbers) the request is the problem's module with its
docstring examples taken out, as a prose request would read. Owner suite (`--suite owner`): the
dev half's prose requests, as the owner wrote them. The Task Monitor writes its verdict test cases
(asked again once with the error when none parses, as in the workflow); each case then runs in
the sandbox against the problem's reference solution. A case that passes there states a right
expected value; one that fails states a wrong one. Runs on the private stack of
bench/humaneval.py; prints JSON and writes a section of docs/benchmarks.md.

    .venv/bin/python bench/monitor_accuracy.py [--suite humaneval|owner] [--model small|large] [--concurrency 2] [--no-doc]
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.humaneval import BENCH_VAR  # noqa: E402
from benchmarks.stack import private_stack  # noqa: E402


def measure_one(project, problem) -> dict:
    from django.db import connection

    from agents import pipeline, policy, sandbox
    from agents.models import Task
    from benchmarks import task_request

    try:
        if "request" in problem:  # an owner request in prose: as the owner wrote it
            request, reference = problem["request"], {"solution.py": problem["canonical_solution"]}
        else:
            _, code = task_request.doctest_examples(problem["prompt"])
            signature = task_request.signature(problem["prompt"], problem["entry_point"])
            request = (
                f"Complete this Python module by implementing `{signature}` as its docstring says.\n\n"
                f"```python\n{code.strip()}\n```\n"
            )
            reference = {"solution.py": problem["prompt"] + problem["canonical_solution"]}
        # a task row for the bookkeeping (AgentCalls, events); no workflow is started for it
        task = Task.objects.create(
            project=project, request=request, entry_point=problem["entry_point"], status=Task.Status.ERROR,
            policy=policy.live(project),
        )  # fmt: skip
        tests, source, error = pipeline.monitor_tests(task)
        asks = task.calls.filter(purpose="monitor_tests").count()
        if source != "monitor":  # nothing usable, or (consensus modes) calls without expected values
            return {"cases": 0, "right": 0, "asks": asks, "error": (error or "calls without expected values")[:200]}
        result = sandbox.run_tests(reference, tests)
        right = sum(t["outcome"] == "passed" for t in result.tests)
        total = tests["test_monitor.py"].count("\ndef test_case_")  # one test function per parsed case
        print(f"{problem['task_id']}: {right}/{total} right ({asks} ask(s))", flush=True)
        return {"cases": total, "right": right, "asks": asks, "run": result.status}
    finally:
        connection.close()  # each pool thread opened its own


def measure(limit=None, concurrency=2, suite="humaneval"):
    """One row per dev problem; `concurrency` problems at once (the monitor's server has 2 slots)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings
    from django.contrib.auth import get_user_model

    from agents import policy
    from agents.models import Project
    from benchmarks import problems as suites

    owner, _ = get_user_model().objects.get_or_create(username="bench-monitor")
    project, _ = Project.objects.get_or_create(owner=owner, name="monitor accuracy")
    policy.follow_settings(project)  # the roster of this run's environment, whatever earlier runs stored
    if suite == "owner":  # the dev half's prose requests: the ones whose verdict the monitor writes
        problems = suites.load_owner_requests()
        dev = [pid for pid in problems if suites.task_number(pid) % 2 == 0]
        selected = [pid for pid in dev if problems[pid]["style"] == "prose"][:limit]
    else:
        problems = suites.load_humaneval()
        selected = suites.select(problems, "dev", limit)
    with ThreadPoolExecutor(concurrency) as pool:
        rows = dict(zip(selected, pool.map(lambda pid: measure_one(project, problems[pid]), selected), strict=True))
    cases = sum(r["cases"] for r in rows.values())
    right = sum(r["right"] for r in rows.values())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "model": settings.GRYPHGEN_ROSTER["monitor"],
        "suite": suite,
        "problems": len(rows),
        "usable": sum(r["cases"] > 0 for r in rows.values()),
        "asked_twice": sum(r["asks"] > 1 for r in rows.values()),
        "cases": cases,
        "right": right,
        "right_share": round(right / cases, 3) if cases else None,
        "all_right": sum(r["cases"] > 0 and r["right"] == r["cases"] for r in rows.values()),
        "none_right": sum(r["cases"] > 0 and r["right"] == 0 for r in rows.values()),
        "rows": rows,
    }


def write_doc(r):
    from benchmarks.report import write_section

    where = (
        f"HumanEval dev ({r['problems']} problems) with the docstring examples hidden"
        if r["suite"] == "humaneval"
        else f"the owner suite's dev prose requests ({r['problems']})"
    )
    write_section(
        f"monitor-accuracy-{r['suite']}-{r['model']}",
        f"""## The Task Monitor's expected values (`bench/monitor_accuracy.py`)

{r["date"]}, {where}, the `{r["model"]}` model as
the monitor. The monitor wrote usable test cases for {r["usable"]}/{r["problems"]} problems ({r["asked_twice"]} needed the
second ask with the error). Of its {r["cases"]} cases, **{r["right"]} ({(r["right_share"] or 0):.0%}) state the right expected
value** (they pass against the reference solution in the sandbox); every case was right for {r["all_right"]} problems
and none for {r["none_right"]}.
""",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="the first N dev problems")
    parser.add_argument("--model", default="small", help="the roster model that plays the monitor")
    parser.add_argument("--concurrency", type=int, default=2, help="problems at once")
    parser.add_argument(
        "--suite", choices=("humaneval", "owner"), default="humaneval",
        help="HumanEval dev with the examples hidden, or the owner suite's dev prose requests",
    )  # fmt: skip
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    with private_stack(BENCH_VAR, workers=1):
        from django.conf import settings

        if args.model not in settings.GRYPHGEN_MODELS:
            parser.error(f"--model must be one of {', '.join(settings.GRYPHGEN_MODELS)}")
        settings.GRYPHGEN_ROSTER = {**settings.GRYPHGEN_ROSTER, "monitor": args.model}
        result = measure(args.limit, args.concurrency, args.suite)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    if not args.no_doc:
        write_doc(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
