"""The Watcher guardian: scores each round's specialist outputs and flags loops.

Deterministic: it reads what the round recorded (calls, tokens, latency, tests) and writes one
GuardianReport per checkpoint. A loop is the same code, or the same failures, as an earlier round.
"""

from django.db.models import Sum

from agents.models import Checkpoint
from guardians.models import GuardianReport


def report_round(checkpoint_id):
    checkpoint = Checkpoint.objects.select_related("task").get(pk=checkpoint_id)
    calls = checkpoint.task.calls.filter(checkpoint=checkpoint)
    totals = calls.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"), ms=Sum("latency_ms"))
    earlier = Checkpoint.objects.filter(task=checkpoint.task, round__lt=checkpoint.round)
    failing = sorted(t["name"] for t in checkpoint.test_results if t["outcome"] != "passed")
    same_code = [c.round for c in earlier if checkpoint.files and c.files == checkpoint.files]
    same_failures = [
        c.round
        for c in earlier
        if failing and sorted(t["name"] for t in c.test_results if t["outcome"] != "passed") == failing
    ]
    findings = {
        "code_extracted": not checkpoint.generation_error,
        "tests": f"{checkpoint.tests_passed}/{checkpoint.tests_total}",
        "failed_calls": calls.exclude(error="").count(),
        "prompt_tokens": totals["p"] or 0,
        "completion_tokens": totals["c"] or 0,
        "llm_ms": totals["ms"] or 0,
        "repeats_code_of_rounds": same_code,
        "repeats_failures_of_rounds": same_failures,
    }
    looping = bool(same_code or same_failures)
    severity = GuardianReport.Severity.WARNING if looping or not checkpoint.good else GuardianReport.Severity.INFO
    recommendation = ""
    if same_code:
        recommendation = "The generator repeated earlier code: vary the prompt or temperature, or revert."
    elif same_failures:
        recommendation = "The same tests failed again: feed sharper failure details or try another strategy."
    GuardianReport.objects.get_or_create(
        checkpoint=checkpoint,
        guardian=GuardianReport.Guardian.WATCHER,
        defaults={
            "task": checkpoint.task,
            "severity": severity,
            "subject": f"round {checkpoint.round}: {findings['tests']} tests, "
            f"{findings['prompt_tokens'] + findings['completion_tokens']} tokens",
            "findings": findings,
            "recommendation": recommendation,
        },
    )
