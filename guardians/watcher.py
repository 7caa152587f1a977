"""The Watcher guardian: scores each round's specialist outputs and flags loops.

Deterministic: it reads what the round recorded (calls, schema validity, tokens against the
budget, latency, tests) and writes one GuardianReport per checkpoint, on the guardians queue
while the workflow goes on. The repeats it reports are the workflow's own loop guard
(agents.loop_guard).
"""

from agents.loop_guard import repeats
from agents.models import Checkpoint
from guardians.models import GuardianReport


def score(checkpoint, calls):
    """0..1: code extracted, schemas kept, tests passed; what the meta-guardian averages."""
    parts = [
        0.0 if checkpoint.generation_error else 1.0,
        1.0 - (sum(1 for c in calls if c.error) / len(calls) if calls else 0.0),
        checkpoint.tests_passed / checkpoint.tests_total if checkpoint.tests_total else 0.0,
    ]
    return round(sum(parts) / len(parts), 3)


def report_round(checkpoint_id):
    checkpoint = Checkpoint.objects.select_related("task").get(pk=checkpoint_id)
    task = checkpoint.task
    calls = list(task.calls.filter(checkpoint=checkpoint))
    spent = task.tokens_spent()
    same_code, same_failures = repeats(checkpoint)
    findings = {
        "score": score(checkpoint, calls),
        "code_extracted": not checkpoint.generation_error,
        "tests": f"{checkpoint.tests_passed}/{checkpoint.tests_total}",
        "failed_calls": sum(1 for c in calls if c.error),
        "schema_errors": sum(1 for c in calls if c.error.startswith("model reply")),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls),
        "task_tokens": spent,
        "budget_tokens": task.budget_tokens or None,
        "llm_ms": sum(c.latency_ms for c in calls),
        "slowest_call_ms": max((c.latency_ms for c in calls), default=0),
        "repeats_code_of_rounds": same_code,
        "repeats_failures_of_rounds": same_failures,
    }
    looping = bool(same_code or same_failures)
    over = bool(task.budget_tokens and spent >= task.budget_tokens)
    severity = (
        GuardianReport.Severity.WARNING if looping or over or not checkpoint.good else GuardianReport.Severity.INFO
    )
    recommendation = ""
    if same_code:
        recommendation = "The generator repeated earlier code: vary the prompt or temperature, or revert."
    elif same_failures:
        recommendation = "The same tests failed again: feed sharper failure details or try another strategy."
    elif over:
        recommendation = "The token budget is spent: raise it or choose a cheaper mode."
    tokens = findings["prompt_tokens"] + findings["completion_tokens"]
    report, _ = GuardianReport.objects.get_or_create(
        checkpoint=checkpoint,
        guardian=GuardianReport.Guardian.WATCHER,
        defaults={
            "task": task,
            "severity": severity,
            "subject": f"round {checkpoint.round}: score {findings['score']}, {findings['tests']} tests, {tokens} tokens",
            "findings": findings,
            "recommendation": recommendation,
        },
    )
    return report
