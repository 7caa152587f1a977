"""Scoring: a problem's hidden check against a finished task's final code, in the sandbox.

The hidden tests stay hidden: a problem's `check` runs only in a scoring SandboxRun (purpose
"score") after the task is finished, against the task's final code; neither its source nor its
output enters an AgentCall, a verdict test, memory or a repair. A finished task's row also says
what it cost (`measure`).
"""

import secrets
from pathlib import Path

from django.db.models import Max, Sum

from agents import sandbox
from agents.models import Checkpoint, SandboxRun, Task
from benchmarks import BenchmarkError

SCORE_FILE = "humaneval_score.py"


def score_program(problem: dict) -> str:
    """The scoring script, run beside the module under test (`solution.py`), ending in `check`.

    HumanEval: the prompt (its helpers), then the module under test over it, then the test and
    `check`, which mirrors HumanEval's own harness (prompt + completion + test + check) for a
    generator that writes the whole module. An owner request: the module under test, then the
    hidden test, then `check` on the entry point.
    """
    entry = problem["entry_point"]
    if "request" in problem:
        return (
            "from solution import *  # noqa: F403  (the hidden test may call the solution's other names)\n"
            f"from solution import {entry}\n\n"
            f"{problem['test']}\n\n"
            f"check({entry})\n"
        )
    return (
        f"{problem['prompt']}\n\n"
        "from solution import *  # noqa: F403  (the module under test replaces the prompt's stubs)\n"
        f"from solution import {entry}\n\n"
        f"{problem['test']}\n\n"
        f"check({entry})\n"
    )


def hidden_check(files: dict, problem: dict) -> tuple[bool, sandbox.SandboxResult]:
    """Run the problem's hidden check against the code `files` in the sandbox: (passed, the run).

    It passes only when the scoring script reaches its end, which prints a fresh random mark after
    `check` returns: code that leaves at import (`sys.exit(0)`, `os._exit(0)`) exits 0 but is not
    scored a pass."""
    mark = f"GRYPHGEN-SCORED-{secrets.token_hex(8)}"
    program = score_program(problem) + f"\nprint({mark!r})\n"
    result = sandbox.run({**files, SCORE_FILE: program}, [f"{sandbox.JAIL_RUNTIME}/bin/python", "-B", SCORE_FILE])
    lines = result.stdout.strip().splitlines()
    return result.status == SandboxRun.Status.PASSED and lines[-1:] == [mark], result


def final_checkpoint(task: Task) -> Checkpoint | None:
    """The code the task ends with: the accepted checkpoint, else the most verdict tests passed."""
    checkpoints = [cp for cp in task.checkpoints.all() if cp.files]
    if not checkpoints:
        return None
    return min(
        checkpoints,
        key=lambda cp: (cp.decision != Checkpoint.Decision.ACCEPT, -cp.tests_passed, not cp.chosen, cp.round,
                        cp.candidate),
    )  # fmt: skip


def score(task: Task, problem: dict) -> dict:
    """Run the problem's hidden `check` in the sandbox against the finished task's final code."""
    if not task.is_finished:
        raise BenchmarkError(f"task {task.pk} is not finished; hidden tests run only after the final decision")
    checkpoint = final_checkpoint(task)
    if checkpoint is None:
        return {"pass": False, "best_code": False, "score": "no code", "checkpoint": None}
    hidden, result = hidden_check(checkpoint.files, problem)
    if result.status == SandboxRun.Status.UNAVAILABLE:
        raise BenchmarkError(f"The sandbox cannot run the scoring tests on this host: {result.stderr}")
    SandboxRun.record(task, checkpoint, result, purpose="score")
    accepted = task.status == Task.Status.ACCEPTED
    # solved: accepted (deployed) and right; best code: the task's final code is right, accepted or not
    return {"pass": accepted and hidden, "best_code": hidden, "score": result.status, "checkpoint": checkpoint.pk}


def measure(task: Task) -> dict:
    """What the task cost and how it ended, from the database."""
    by_model = task.calls.values("model").annotate(tokens=Sum("prompt_tokens") + Sum("completion_tokens"))
    # model and sandbox time the task itself used: its cost without the queueing that concurrency adds
    busy_ms = (task.calls.aggregate(ms=Sum("latency_ms"))["ms"] or 0) + (
        task.sandbox_runs.exclude(purpose="score").aggregate(ms=Sum("duration_ms"))["ms"] or 0
    )
    return {
        "task": task.pk,
        "status": task.status,
        "accepted": task.status == Task.Status.ACCEPTED,
        "escalated": task.escalated,
        "tokens_by_model": {Path(row["model"]).name or "unknown": row["tokens"] or 0 for row in by_model},
        "stop_reason": task.stop_reason,
        "tokens": task.tokens_spent(),
        "wall_seconds": round(task.wall_seconds, 1),
        "busy_seconds": round(busy_ms / 1000, 1),
        "rounds": task.checkpoints.aggregate(rounds=Max("round"))["rounds"] or 0,
        "memories": sum(len(m) for m in task.calls.values_list("memories", flat=True)),
        "reused": task.checkpoints.filter(reused__isnull=False).values_list("reused", flat=True).first(),
        "verdict_source": task.verdict_source,
        "verdict_tests": len(task.verdict_tests or {}),
        "message": task.message[:300],
    }


def result_row(task: Task, problem: dict) -> dict:
    """A finished task's row: scored, unless it ended in an infrastructure error."""
    row = measure(task)
    if task.status == Task.Status.ERROR:
        return {"pass": False, "score": "not scored: the task ended in error", "checkpoint": None, **row}
    return {**score(task, problem), **row}
