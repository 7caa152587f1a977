"""The Safety monitor: reports on every review of generated code (the review itself is the
workflow's safety review, agents.safety_review), and reviews proposals before anyone may test them.
"""

from agents import policy, safety_review
from guardians.models import GuardianReport

# settings outside the policy a proposal may name (for the operator), with their safe range
OPERATOR_BOUNDS = {"llm.timeout": (10, 900)}
FORBIDDEN_TARGETS = ("sandbox", "safety", "secret", "auth")


def review_proposal(target: str, value) -> str:
    """ "" if the proposal may go to an A/B test, else the reason it may not. A policy value must
    keep the live policy valid (agents.policy bounds every value); anything else must be a setting
    of OPERATOR_BOUNDS within its range. Sandbox, security and secrets are never targets."""
    if any(word in target.lower() for word in FORBIDDEN_TARGETS):
        return f"{target} guards the system; guardians may not propose changes to it"
    if isinstance(value, str) and any(pattern.search(value) for pattern, _ in safety_review.SECRET_VALUES):
        return "the proposed text embeds a secret"
    if target in OPERATOR_BOUNDS:
        low, high = OPERATOR_BOUNDS[target]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            return f"{target} = {value!r} is outside the safe range {low} to {high}"
        return ""
    try:
        policy.changed(policy.values_of(policy.live()), target, value)
    except policy.PolicyError as exc:
        return str(exc)
    return ""


def report(sender, checkpoint, review: safety_review.Review, when: str, **kwargs):
    """The safety monitor's report on a checkpoint's code, one per checkpoint (a receiver of
    agents.signals.code_reviewed)."""
    blocked = review.blocked
    severity = "critical" if blocked else ("warning" if review.findings else "info")
    subject = f"round {checkpoint.round}: " + (
        f"blocked before it {when}" if blocked else f"{len(review.findings)} warning(s)" if review.findings else "clean"
    )
    return GuardianReport.objects.get_or_create(
        checkpoint=checkpoint,
        guardian=GuardianReport.Guardian.SAFETY,
        defaults={
            "task_id": checkpoint.task_id,
            "severity": severity,
            "failure_class": "safety_blocked" if blocked else "",
            "subject": subject,
            "findings": {"findings": review.findings},
            "recommendation": review.reasons() and "Remove: " + review.reasons(),
        },
    )[0]
