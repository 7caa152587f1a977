"""The improvement cycle, measured: does it find a better policy on its own?

On a private stack of its own (var/bench-improvement/, like bench/humaneval.py's), it makes a
deliberately weaker policy live (`--start`, default: one plain call), runs `--cycles` improvement
cycles on HumanEval *dev* problems exactly as the product runs them (improvement/cycle.py; the
database holds no owner history here, so every problem is from dev), then runs the whole *test*
split under the starting version and under the version live after the cycles, interleaved
problem by problem, and reports both with the paired difference. The test split never reaches a
cycle: its tasks run after the last cycle, in a staging project (never history, never memory).

    .venv/bin/python -u bench/improvement.py --cycles 3 --problems 24 --arms 1 --doc
    .venv/bin/python -u bench/improvement.py --resume --doc     # go on where a stopped run ended
    .venv/bin/python bench/improvement.py --cycles 1 --problems 2 --test-limit 4 --out /tmp/imp --var /tmp/imp-var  # smoke

The whole run takes longer than a working session on a 2-core machine, so everything it needs
to go on is kept under `--out` (default bench/results/improvement/): `cycles.json` (the start,
each finished cycle: its problems, arms, table, decision and the version it left live; the
running cycle with the trials judged so far) and one result file per version for the test split.
`--resume` starts a fresh database, rebuilds it from `cycles.json` (the recorded cycles, their
arms and the live version, so the next cycle tests what it would have tested; the running cycle
with its judged trials) and goes on: only the trials and test problems in flight at the stop run
again. Prints JSON; with --doc writes the summary into docs/benchmarks.md (a
--test-limit run never does).
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
OUT = BASE / "bench" / "results" / "improvement"


def weaker_start(mode: str):
    """The settings' values with `mode`, made live as a new global version."""
    from agents import policy

    values = policy.changed(policy.from_settings(), "mode", mode)
    return policy.publish(
        values.model_dump(), project=None, parent=policy.live(), note=f"bench/improvement.py: the weaker start ({mode})"
    )


def cycle_record(cycle, minutes: float) -> dict:
    """What `rebuild` needs to put a finished cycle back, and what the report shows."""
    from agents import policy

    arms = list(cycle.arms.select_related("policy"))
    return {
        "status": cycle.status, "decision": cycle.decision, "table": cycle.table, "problems": cycle.problems,
        "arms": [{"label": a.label, "baseline": a.baseline, "values": policy.values_of(a.policy).model_dump()} for a in arms],
        "adopted": next((a.label for a in arms if a.policy_id == cycle.adopted_id), None), "minutes": minutes,
    }  # fmt: skip


def rebuild(state: dict):
    """A fresh database brought to where the recorded run stopped: the starting version live, every
    recorded cycle as it ended (its arms' versions, its decision, its adopted version live), and the
    cycle that was running, with the trials it had judged. Returns the starting version."""
    from django.utils import timezone

    from agents import policy
    from improvement.models import Cycle, Trial

    start = policy.publish(
        state["start"]["values"], project=None, parent=policy.live(), note="bench/improvement.py: the weaker start"
    )
    for entry in state["cycles"]:
        cycle = Cycle.objects.create(
            baseline=policy.live(), problems=entry["problems"], status=entry["status"], decision=entry["decision"],
            table=entry["table"], finished=timezone.now(),
        )  # fmt: skip
        arms = put_back_arms(cycle, entry["arms"])
        if adopted := arms.get(entry["adopted"]):
            policy.make_live(adopted.policy)
            Cycle.objects.filter(pk=cycle.pk).update(adopted=adopted.policy)
    if running := state.get("running"):  # the cycle that was stopped: its arms, its judged trials kept
        cycle = Cycle.objects.create(baseline=policy.live(), problems=running["problems"])
        for label, arm in put_back_arms(cycle, running["arms"]).items():
            judged = running["trials"].get(label, {})
            Trial.objects.bulk_create(
                Trial(arm=arm, problem=p["key"], **judged.get(p["key"], {})) for p in running["problems"]
            )
    return start


def put_back_arms(cycle, recorded: list) -> dict:
    """The recorded arms as rows of `cycle`: the live version for the baseline, a new version that
    is not live for each candidate. {label: Arm}."""
    from agents import policy
    from improvement.models import Arm

    arms = {}
    for arm in recorded:
        version = cycle.baseline if arm["baseline"] else policy.publish(
            arm["values"], project=None, parent=cycle.baseline, go_live=False,
            note=f"cycle {cycle.pk} candidate: {arm['label']}"[:300],
        )  # fmt: skip
        arms[arm["label"]] = Arm.objects.create(
            cycle=cycle, policy=version, label=arm["label"], baseline=arm["baseline"]
        )
    return arms


def judged_trials(cycle) -> dict:
    """{arm label: {problem: outcome}} of the cycle's trials judged (or in error) so far."""
    from improvement.models import Trial

    done = {}
    for trial in Trial.objects.filter(arm__cycle=cycle).exclude(passed=None, error="").select_related("arm"):
        done.setdefault(trial.arm.label, {})[trial.problem] = {
            "passed": trial.passed, "error": trial.error, "wall_seconds": trial.wall_seconds, "tokens": trial.tokens,
        }  # fmt: skip
    return done


def run_cycles(state: dict, count: int, out: Path, poll: float) -> None:
    """The remaining cycles; the running one is written to the state after every judged trial."""
    from benchmarks.runner import write_json
    from improvement import cycle as cycles

    for number in range(len(state["cycles"]) + 1, count + 1):
        cycle = cycles.begin()
        if cycle is None:
            raise SystemExit("improvement cycles are off (GRYPHGEN_CYCLES)")
        earlier, started, seen = state.get("running", {}).get("minutes", 0.0), time.monotonic(), None

        def minutes(earlier=earlier, started=started):
            return round(earlier + (time.monotonic() - started) / 60, 1)

        while not cycles.advance(cycle.pk):
            if (trials := judged_trials(cycle)) != seen:
                seen, state["running"] = trials, {**cycle_record(cycle, minutes()), "trials": trials}
                write_json(out / "cycles.json", state)
            time.sleep(poll)
        cycles.decide(cycle)
        cycle.refresh_from_db()
        state["cycles"].append(cycle_record(cycle, minutes()))
        state.pop("running", None)
        write_json(out / "cycles.json", state)
        print(json.dumps({"cycle": number, "status": cycle.status, "decision": cycle.decision}), flush=True)


def test_split(versions: dict, out: Path, limit: int | None, concurrency: int, resume: bool) -> tuple:
    """The test split under each version ({name: Policy}), interleaved: ({name: rows}, the problem ids)."""
    from agents import policy
    from agents.services import submit_task
    from benchmarks import problems as suites
    from benchmarks import runner, task_request
    from improvement.cycle import staging_project

    problems = suites.load_humaneval()
    selection = suites.select(problems, "test", limit)
    project = staging_project()
    files = {}
    for name, version in versions.items():
        header = {
            "benchmark": "humaneval", "mode": name, "split": "test", "selection": selection,
            "settings": {"policy": policy.values_of(version).model_dump()}, "machine": runner.machine(),
            "command": " ".join(sys.argv),
        }  # fmt: skip
        files[name] = runner.ResultFile.open(out / f"test-{name}.json", header, resume=resume, fresh=not resume)
        files[name].data["in_flight"].clear()  # their tasks were in a database that is gone: run them again

    def submit(problem_id, name):
        request = task_request.build_request(problems[problem_id])[0]
        return submit_task(project, request, under=versions[name], memory_key=f"bench improvement {problem_id}")

    runner.Benchmark(problems, files, submit, concurrency=concurrency, report=lambda item, row: None).run()
    return {name: f.rows for name, f in files.items()}, selection


def summary(state: dict, start, final, rows, selection, partial: bool) -> dict:
    from agents import policy
    from benchmarks import runner, statistics

    table = {name: runner.totals(r, selection) for name, r in rows.items()}
    for name, r in rows.items():
        table[name]["ci95"] = statistics.bootstrap_ci([int(r[p]["pass"]) for p in selection if p in r])
    if "after" in rows:
        table["after"]["vs_before"] = statistics.paired_bootstrap(rows["after"], rows["before"], selection)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": runner.machine(),
        "command": started_command(state["options"]) + (", then --resume" if "--resume" in sys.argv else ""),
        "start": {"version": start.version, "mode": state["start"]["mode"]},
        "final": {"version": final.version, "changes": policy.diff(policy.values_of(start), policy.values_of(final))},
        "cycles": state["cycles"], "problems_per_cycle": state["options"]["problems"], "test": table, "partial": partial,
    }  # fmt: skip


def started_command(options: dict) -> str:
    """The command line that starts a run with `options` (a resumed run goes on with those)."""
    flags = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in options.items() if value is not None)
    return f".venv/bin/python -u bench/improvement.py {flags} --doc"


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
    for number, c in enumerate(result["cycles"], 1):
        arms = "; ".join(
            f"{row['arm']}: {row['solved']}/{row['judged']}"
            + ("" if row["baseline"] else f", Δ {row.get('difference')} {row.get('ci95')}")
            + f", {row['seconds']} s"
            for row in c["table"]
        )
        lines.append(f"| {number} | {c['status']}: {c['decision'].partition(' rule: ')[0]} | {arms} |")
    if result["cycles"]:  # every cycle states the same rule after its decision
        lines += ["", f"Decision rule: {result['cycles'][0]['decision'].partition(' rule: ')[2]}"]
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
    parser.add_argument("--problems", type=int, default=24, help="HumanEval dev problems per arm and cycle")
    parser.add_argument("--arms", type=int, default=2, help="candidate policies per cycle")
    parser.add_argument("--in-flight", type=int, default=2, help="staging tasks at once")
    parser.add_argument("--test-limit", type=int, help="only the first N test problems (a smoke run; no --doc)")
    parser.add_argument("--concurrency", type=int, default=4, help="test-split tasks at once")
    parser.add_argument("--out", type=Path, default=OUT, help="where the run's state and result files are kept")
    parser.add_argument("--var", type=Path, default=VAR, help="the private stack's directory (emptied at start)")
    parser.add_argument("--resume", action="store_true", help="go on from the state in --out")
    parser.add_argument("--fresh", action="store_true", help="start over, replacing the state in --out")
    parser.add_argument("--doc", action="store_true")
    args = parser.parse_args()
    options = {key: getattr(args, key) for key in ("start", "cycles", "problems", "arms", "in_flight", "test_limit")}
    state_file = args.out / "cycles.json"
    if args.resume:
        if not state_file.exists():
            raise SystemExit(f"nothing to resume: {state_file} does not exist")
        state = json.loads(state_file.read_text())
        options = state["options"]  # a resumed run goes on as it was started
    elif state_file.exists() and not args.fresh:
        raise SystemExit(f"{state_file} holds an earlier run: pass --resume to go on with it, or --fresh to start over")
    else:
        for old in args.out.glob("*.json"):
            old.unlink()
        state = None
    cycle_env = {
        "GRYPHGEN_CYCLE_PROBLEMS": str(options["problems"]),
        "GRYPHGEN_CYCLE_ARMS": str(options["arms"]),
        "GRYPHGEN_CYCLE_IN_FLIGHT": str(options["in_flight"]),
    }
    with private_stack(args.var, fresh=True, env=cycle_env):
        from agents import policy
        from benchmarks.runner import write_json

        if state is None:
            start = weaker_start(options["start"])
            state = {"options": options, "start": {"mode": options["start"], "values": policy.values_of(start).model_dump()}, "cycles": []}  # fmt: skip
            write_json(state_file, state)
        else:
            start = rebuild(state)
        run_cycles(state, options["cycles"], args.out, poll=2.0)
        final = policy.live()
        versions = {"before": start, **({"after": final} if final != start else {})}
        rows, selection = test_split(versions, args.out, options["test_limit"], args.concurrency, args.resume)
        result = summary(state, start, final, rows, selection, bool(options["test_limit"]))
    print(json.dumps(result, indent=2))
    if args.doc and not options["test_limit"]:
        write_doc(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
