"""The Meta-guardian: a periodic view of the whole system, stored as a GuardianReport.

Pass rates by mode, call success, tokens and latency percentiles by role, failure classes by
hour, open alerts and dead letters, over the last GRYPHGEN_META_WINDOW_HOURS. The admin shows
each view; the optimizer guardian reads the same tables.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from agents.models import AgentCall, Task
from guardians.models import Alert, DeadLetter, GuardianReport

MAX_LATENCIES = 20_000  # per role: enough for percentiles, bounded memory


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def system_view(since):
    tasks = Task.objects.filter(finished__gte=since, project__staging=False)  # owners' work, not A/B trials
    modes = {
        row["mode"]: {
            "tasks": row["n"],
            "accepted": row["accepted"],
            "pass_rate": round(row["accepted"] / row["n"], 3),
        }
        for row in tasks.values("mode").annotate(n=Count("id"), accepted=Count("id", filter=Q(status="accepted")))
    }
    calls = AgentCall.objects.filter(created__gte=since)
    roles = {}
    for row in calls.values("role").annotate(
        n=Count("id"), failed=Count("id", filter=~Q(error="")), tokens=AgentCall.tokens()
    ):
        latencies = sorted(
            calls.filter(role=row["role"], error="")
            .order_by("-id")
            .values_list("latency_ms", flat=True)[:MAX_LATENCIES]
        )
        roles[row["role"]] = {
            "calls": row["n"],
            "success_rate": round(1 - row["failed"] / row["n"], 3),
            "tokens": row["tokens"] or 0,
            "latency_ms_p50": percentile(latencies, 0.50),
            "latency_ms_p95": percentile(latencies, 0.95),
        }
    failures = GuardianReport.objects.filter(created__gte=since, guardian="diagnostician").exclude(failure_class="")
    by_hour = {}
    for row in failures.annotate(hour=TruncHour("created")).values("hour", "failure_class").annotate(n=Count("id")):
        by_hour.setdefault(row["hour"].isoformat(), {})[row["failure_class"]] = row["n"]
    return {
        "since": since.isoformat(),
        "modes": modes,
        "roles": roles,
        "failure_classes": dict(failures.values_list("failure_class").annotate(n=Count("id")).order_by()),
        "failure_classes_by_hour": by_hour,
        "open_alerts": Alert.objects.filter(resolved__isnull=True).count(),
        "dead_letters_waiting": DeadLetter.objects.filter(requeued__isnull=True).count(),
    }


def review(now=None):
    now = now or timezone.now()
    view = system_view(now - timedelta(hours=settings.GRYPHGEN_META_WINDOW_HOURS))
    total = sum(m["tasks"] for m in view["modes"].values())
    accepted = sum(m["accepted"] for m in view["modes"].values())
    worst = min(view["roles"].items(), key=lambda kv: kv[1]["success_rate"], default=None)
    concerns = []
    if view["open_alerts"]:
        concerns.append(f"{view['open_alerts']} open alert(s)")
    if worst and worst[1]["success_rate"] < 0.9:
        concerns.append(f"{worst[0]} calls succeed only {worst[1]['success_rate']:.0%}")
    subject = f"system view: {total} task(s) finished, {accepted} accepted" + (
        f" ({accepted / total:.0%})" if total else ""
    )
    return GuardianReport.objects.create(
        guardian=GuardianReport.Guardian.META,
        severity=GuardianReport.Severity.WARNING if concerns else GuardianReport.Severity.INFO,
        subject=subject[:200],
        findings=view,
        recommendation="; ".join(concerns),
    )
