"""Replay the consensus vote of finished benchmark tasks under other policies, on their stored candidates.

Tuning on dev without new model calls: every candidate of every consensus task of a run (the
results of bench/humaneval.py, e.g. `--split dev`) is scored once on the hidden check in the
sandbox, then each policy re-decides every task from the stored verdict-test counts and
behaviours. A policy changes what is accepted, never which candidates exist: policies that
would escalate where the run did not cannot be replayed, and are not offered. Runs on the
private stack of bench/humaneval.py; prints JSON.

    .venv/bin/python bench/consensus_replay.py --mode consensus --split dev
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.humaneval import BENCH_VAR  # noqa: E402
from benchmarks.stack import private_stack  # noqa: E402


def load(mode, split, suite):
    from agents.consensus import Ballot
    from agents.models import Checkpoint, Task
    from benchmarks import problems, scoring

    name = ("owner-" if suite == "owner" else "") + split
    rows = json.loads((BENCH_VAR / "humaneval" / f"{mode}-{name}.json").read_text())["problems"]
    suite_problems = problems.load(suite)
    tasks = []
    for problem_id, row in rows.items():
        if "task" not in row:
            continue
        task = Task.objects.get(pk=row["task"])
        checkpoints = list(Checkpoint.objects.filter(task=task, round=1).order_by("candidate"))
        candidates = []
        for cp in checkpoints:
            hidden = bool(cp.files) and scoring.hidden_check(cp.files, suite_problems[problem_id])[0]
            outputs = (cp.behaviour or {}).get("outputs")
            large = "1.5b" in cp.model
            ballot = Ballot(
                cp.candidate, cp.tests_passed, cp.tests_total, outputs, cp.model, cp.generation_error,
                escalated=large and not task.generator_model,
            )  # fmt: skip
            candidates.append({"ballot": ballot, "hidden": hidden, "large": large})
        tasks.append(
            {
                "id": problem_id,
                "accepted": row["accepted"],
                "pass": row["pass"],
                "strong": len(task.verdict_tests or {}) >= 2
                and task.verdict_source == "doctest"
                or task.verdict_source == "acceptance",
                "inputs": len(task.probe_inputs or []),
                "candidates": candidates,
            }
        )
    return tasks


def decide(task, min_group, use):
    """(accepted, right) for `task` when only the candidates `use` picks take part and the vote's
    winner is accepted only when it passes every verdict test and its group has `min_group`."""
    from agents.consensus import vote

    chosen = [c for c in task["candidates"] if use(c)]
    if not chosen:
        return False, False
    if len(chosen) == 1:  # the draft alone: accepted on a strong verdict it passes
        only = chosen[0]
        accepted = only["ballot"].good and task["strong"]
        return accepted, accepted and only["hidden"]
    result = vote([c["ballot"] for c in chosen], [None] * task["inputs"])
    if result.winner is None or not result.winner.good or len(result.group) < min_group:
        return False, False
    winner = next(c for c in chosen if c["ballot"].number == result.winner.number)
    return True, winner["hidden"]


def summary(tasks, min_group, use):
    decided = [decide(t, min_group, use) for t in tasks]
    accepted = sum(a for a, _ in decided)
    right = sum(r for _, r in decided)
    return {"solved": right, "accepted": accepted, "accepted_but_wrong": accepted - right}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="consensus")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--suite", default="humaneval", choices=["humaneval", "owner"])
    args = parser.parse_args()
    with private_stack(BENCH_VAR, workers=1):
        tasks = load(args.mode, args.split, args.suite)
    everyone = lambda c: True  # noqa: E731
    report = {
        "mode": args.mode,
        "split": args.split,
        "tasks": len(tasks),
        "recorded": {"solved": sum(t["pass"] for t in tasks), "accepted": sum(t["accepted"] for t in tasks)},
        "any_candidate_right": sum(any(c["hidden"] for c in t["candidates"]) for t in tasks),
        "policies": {f"min_group={k}": summary(tasks, k, everyone) for k in (1, 2, 3, 4)},
        "without_the_large_model": summary(tasks, 1, lambda c: not c["large"]),
        "large_model_only": summary(tasks, 1, lambda c: c["large"]),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
