"""The Optimizer guardian: turns what the other guardians saw into concrete Proposals.

Each rule reads recent reports and calls, and when its evidence is strong enough proposes one
change with that evidence: a value of the live policy (agents.policy; the target is its path in
the values, e.g. `temperatures.generator`), or a setting only an operator changes (`llm.timeout`).
The safety monitor reviews every proposal; a proposal never changes anything by itself: only an
A/B test adopts one. At most one open proposal per target.
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from agents import policy
from agents.models import AgentCall, Checkpoint, Task
from guardians import safety
from guardians.models import GuardianReport, Proposal

MIN_EVIDENCE = 10  # calls, rounds or tasks a rule needs before it speaks


def rule_format_errors(since, values):
    """A role whose structured replies often break their schema is usually cut off: more tokens."""
    rows = (
        AgentCall.objects.filter(created__gte=since)
        .values("role")
        .annotate(n=Count("id"), bad=Count("id", filter=Q(error__startswith="model reply")))
    )
    for row in rows:
        if row["n"] >= MIN_EVIDENCE and row["bad"] / row["n"] > 0.2:
            current = values.max_tokens.get(row["role"])
            if current:
                yield (f"max_tokens.{row['role']}", current, min(4096, int(current * 1.5)),
                       f"{row['bad']} of {row['n']} {row['role']} replies broke their schema",
                       {"calls": row["n"], "format_errors": row["bad"]})  # fmt: skip


def rule_loops(since, values):
    """Rounds that repeat earlier code: the generator needs more variety."""
    reports = GuardianReport.objects.filter(created__gte=since, guardian="watcher")
    total = reports.count()
    looped = reports.exclude(findings__repeats_code_of_rounds=[]).count()
    if total >= MIN_EVIDENCE and looped / total > 0.3:
        current = values.temperatures["generator"]
        yield ("temperatures.generator", current, round(min(1.0, current + 0.2), 2),
               f"{looped} of {total} rounds repeated an earlier round's code",
               {"rounds": total, "repeated_code": looped})  # fmt: skip


def rule_repair_rounds(since, values):
    """If repair rounds almost never turn a failing task into an accepted one, they cost more than they win."""
    finished = Task.objects.filter(finished__gte=since, project__staging=False).exclude(mode="single")
    multi = finished.filter(checkpoints__round__gt=1).distinct()
    if multi.count() < MIN_EVIDENCE:
        return
    rescued = multi.filter(status="accepted").count()
    current = values.max_rounds
    last_rounds = Checkpoint.objects.filter(task__in=multi, round=current, good=True).count()
    if rescued / multi.count() < 0.1 and current > 1:
        yield ("max_rounds", current, current - 1,
               f"repairs rescued {rescued} of {multi.count()} tasks that needed them",
               {"tasks_repaired": multi.count(), "rescued": rescued})  # fmt: skip
    elif last_rounds / multi.count() > 0.25 and current < 6:
        yield ("max_rounds", current, current + 1,
               f"{last_rounds} of {multi.count()} repaired tasks only passed in the last allowed round",
               {"tasks_repaired": multi.count(), "passed_in_last_round": last_rounds})  # fmt: skip


def rule_timeouts(since, values):
    """LLM calls that time out: the timeout is shorter than the model needs."""
    reports = GuardianReport.objects.filter(created__gte=since, guardian="diagnostician", failure_class="timeout")
    n = reports.filter(findings__step__isnull=False).count()
    if n >= 3:
        current = settings.GRYPHGEN_LLM_TIMEOUT
        yield ("llm.timeout", current, min(900, int(current * 1.5)), f"{n} step attempts timed out",
               {"timeouts": n, "reports": list(reports.values_list("id", flat=True)[:20])})  # fmt: skip


def rule_mode(since, values):
    """A mode that wins clearly over the policy's, on enough tasks of each."""
    rows = {
        r["mode"]: r
        for r in Task.objects.filter(finished__gte=since, project__staging=False)
        .values("mode")
        .annotate(n=Count("id"), ok=Count("id", filter=Q(status="accepted")))
    }
    default = values.mode
    if default not in rows or rows[default]["n"] < MIN_EVIDENCE:
        return
    base = rows[default]["ok"] / rows[default]["n"]
    best = max((r for r in rows.values() if r["n"] >= MIN_EVIDENCE), key=lambda r: r["ok"] / r["n"])
    if best["mode"] != default and best["ok"] / best["n"] - base >= 0.1:
        yield ("mode", default, best["mode"],
               f"{best['mode']} passed {best['ok']}/{best['n']} against {default}'s {rows[default]['ok']}/{rows[default]['n']}",
               {m: {"tasks": r["n"], "accepted": r["ok"]} for m, r in rows.items()})  # fmt: skip


RULES = [rule_format_errors, rule_loops, rule_repair_rounds, rule_timeouts, rule_mode]


def propose(now=None):
    """Run every rule over the recent window; returns the proposals it created."""
    now = now or timezone.now()
    since = now - timedelta(hours=settings.GRYPHGEN_META_WINDOW_HOURS)
    values = policy.values_of(policy.live())
    created = []
    for rule in RULES:
        for target, current, value, rationale, evidence in rule(since, values):
            refusal = safety.review_proposal(target, value)
            try:
                with transaction.atomic():
                    proposal = Proposal.objects.create(
                        target=target, current=current, proposed=value, rationale=rationale,
                        evidence={"rule": rule.__name__, **evidence},
                        status=Proposal.Status.BLOCKED if refusal else Proposal.Status.PROPOSED,
                        safety_review=refusal or "within bounds",
                    )  # fmt: skip
            except IntegrityError:
                continue  # an open proposal for this target is waiting for its A/B test
            created.append(proposal)
    return created
