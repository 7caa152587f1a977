"""The improvement cycle, measured: does it find a better policy on its own?

On a private stack of its own (var/bench-improvement/, like bench/humaneval.py's), it makes a
deliberately weaker policy live (`--start`, default: one plain call), runs `--cycles` improvement
cycles on HumanEval *dev* problems exactly as the product runs them (improvement/cycle.py; the
database holds no owner history here, so every problem is from dev), then runs the whole *test*
split under the starting version and under the version live after the cycles, interleaved
problem by problem, and reports both with the paired difference. The test split never reaches a
cycle: its tasks run after the last cycle, in a staging project (never history, never memory).

    .venv/bin/python bench/improvement.py --cycles 3 --problems 12 --doc
    .venv/bin/python bench/improvement.py --cycles 1 --problems 2 --test-limit 4   # a smoke run

Prints JSON; with --doc writes the summary into docs/benchmarks.md (a --test-limit run never does).
"""

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from benchmarks.stack import private_stack  # noqa: E402

VAR = BASE / "var" / "bench-improvement"


def weaker_start(mode: str):
    """The settings' values with `mode`, made live as a new global version."""
    from agents import policy

    values = policy.changed(policy.from_settings(), "mode", mode)
    return policy.publish(
        values.model_dump(), project=None, parent=policy.live(), note=f"bench/improvement.py: the weaker start ({mode})"
    )


def run_cycles(count: int, poll: float) -> list:
    from improvement import cycle as cycles

    done = []
    for number in range(1, count + 1):
        cycle = cycles.begin()
        if cycle is None:
            raise SystemExit("improvement cycles are off (GRYPHGEN_CYCLES)")
        started = time.monotonic()
        while not cycles.advance(cycle.pk):
            time.sleep(poll)
        cycles.decide(cycle)
        cycle.refresh_from_db()
        entry = {
            "cycle": number, "status": cycle.status, "decision": cycle.decision, "table": cycle.table,
            "minutes": round((time.monotonic() - started) / 60, 1),
        }  # fmt: skip
        print(json.dumps(entry), flush=True)
        done.append(entry)
    return done


def test_split(versions: dict, limit: int | None, concurrency: int) -> tuple:
    """The test split under each version ({name: Policy}), interleaved: ({name: rows}, the problem ids)."""
    from agents.services import submit_task
    from benchmarks import problems as suites
    from benchmarks import runner, task_request
    from improvement.cycle import staging_project

    problems = suites.load_humaneval()
    selection = suites.select(problems, "test", limit)
    project = staging_project()
    files = {
        name: runner.ResultFile.open(
            VAR / "results" / f"test-{name}.json",
            {
                "benchmark": "humaneval",
                "mode": name,
                "split": "test",
                "selection": selection,
                "settings": {"policy": version.pk},
                "machine": runner.machine(),
                "command": " ".join(sys.argv),
            },
            resume=False,
            fresh=True,
        )  # fmt: skip
        for name, version in versions.items()
    }

    def submit(problem_id, name):
        request = task_request.build_request(problems[problem_id])[0]
        return submit_task(project, request, under=versions[name], memory_key=f"bench improvement {problem_id}")

    runner.Benchmark(problems, files, submit, concurrency=concurrency, report=lambda item, row: None).run()
    return {name: f.rows for name, f in files.items()}, selection


def summary(start, final, cycles_run, rows, selection, args) -> dict:
    from agents import policy
    from benchmarks import runner, statistics

    table = {name: runner.totals(r, selection) for name, r in rows.items()}
    for name, r in rows.items():
        table[name]["ci95"] = statistics.bootstrap_ci([int(r[p]["pass"]) for p in selection if p in r])
    if "after" in rows:
        table["after"]["vs_before"] = statistics.paired_bootstrap(rows["after"], rows["before"], selection)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": runner.machine(),
        "command": "bench/improvement.py " + " ".join(sys.argv[1:]),
        "start": {"version": start.version, "mode": args.start},
        "final": {"version": final.version, "changes": policy.diff(policy.values_of(start), policy.values_of(final))},
        "cycles": cycles_run, "problems_per_cycle": args.problems, "test": table, "partial": bool(args.test_limit),
    }  # fmt: skip


def write_doc(result: dict) -> None:
    from benchmarks.report import write_section

    lines = [
        "## The improvement cycle (`bench/improvement.py`)",
        "",
        f"{result['date']}, {result['machine']}. Command: `{result['command']}`. Start: global policy "
        f"v{result['start']['version']} in mode `{result['start']['mode']}`; "
        f"{len(result['cycles'])} cycles of {result['problems_per_cycle']} HumanEval dev problems per arm.",
        "",
        "| cycle | decision | arms (solved / judged, Δ vs live with 95% CI, s / problem) |",
        "|---|---|---|",
    ]
    for c in result["cycles"]:
        arms = "; ".join(
            f"{row['arm']}: {row['solved']}/{row['judged']}"
            + ("" if row["baseline"] else f", Δ {row.get('difference')} {row.get('ci95')}")
            + f", {row['seconds']} s"
            for row in c["table"]
        )
        lines.append(f"| {c['cycle']} | {c['status']}: {c['decision'][:160]} | {arms} |")
    lines += ["", "Whole test split (82), under the starting version and the version live after the cycles:", ""]
    lines += ["| version | solved | pass@1 (95% CI) | Δ vs start (95% CI) | s / problem | accepted but wrong |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, t in result["test"].items():
        delta = t.get("vs_before")
        shown = "—" if not delta else f"{delta['difference']:+.2f} ({delta['ci95']})"
        lines.append(
            f"| {name} | {t['passed']}/{t['done']} | {t['pass_at_1']} ({t['ci95']}) | {shown} | "
            f"{t['seconds_per_problem']} | {t['accepted_wrong']}/{t['accepted']} |"
        )
    lines += ["", f"Changes the cycles made: {result['final']['changes'] or 'none'}."]
    write_section("improvement", "\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default="single", help="the mode of the weaker starting policy")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--problems", type=int, default=12, help="HumanEval dev problems per arm and cycle")
    parser.add_argument("--arms", type=int, default=2, help="candidate policies per cycle")
    parser.add_argument("--in-flight", type=int, default=2, help="staging tasks at once")
    parser.add_argument("--test-limit", type=int, help="only the first N test problems (a smoke run; no --doc)")
    parser.add_argument("--concurrency", type=int, default=4, help="test-split tasks at once")
    parser.add_argument("--doc", action="store_true")
    args = parser.parse_args()
    cycle_env = {
        "GRYPHGEN_CYCLE_PROBLEMS": str(args.problems),
        "GRYPHGEN_CYCLE_ARMS": str(args.arms),
        "GRYPHGEN_CYCLE_IN_FLIGHT": str(args.in_flight),
    }
    with private_stack(VAR, env=cycle_env):
        from agents import policy
        from agents.models import Task
        from improvement.models import Cycle

        if Cycle.objects.exists() or Task.objects.exists():
            raise SystemExit(f"{VAR} holds an earlier run; remove it (rm -rf {VAR}) for a clean start")
        start = weaker_start(args.start)
        cycles_run = run_cycles(args.cycles, poll=2.0)
        final = policy.live()
        versions = {"before": start, **({"after": final} if final != start else {})}
        rows, selection = test_split(versions, args.test_limit, args.concurrency)
        result = summary(start, final, cycles_run, rows, selection, args)
    print(json.dumps(result, indent=2))
    if args.doc and not args.test_limit:
        write_doc(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
