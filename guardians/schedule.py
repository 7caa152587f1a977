"""Periodic jobs fire once per due time, however many beat processes send them.

A job's due time is the start of its period; the first message to insert the (job, due) row
runs the job, later ones count themselves as duplicates and return. The row also records how
the run ended.
"""

from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import F

from guardians.models import ScheduledRun


def due_time(period_seconds: float, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    start = (now.timestamp() // period_seconds) * period_seconds
    return datetime.fromtimestamp(start, UTC)


def claim(job: str, period_seconds: float, now: datetime | None = None) -> ScheduledRun | None:
    """The claimed run, or None when another message already claimed this due time."""
    due = due_time(period_seconds, now)
    try:
        with transaction.atomic():
            return ScheduledRun.objects.create(job=job, due=due)
    except IntegrityError:
        ScheduledRun.objects.filter(job=job, due=due).update(duplicates=F("duplicates") + 1)
        return None


def run_once(job: str, period_seconds: float, fn):
    """Claim this period's run of `job`, then run `fn`; its return value becomes the outcome."""
    run = claim(job, period_seconds)
    if run is None:
        return None
    outcome = fn()
    ScheduledRun.objects.filter(pk=run.pk).update(outcome=str(outcome)[:200])
    return outcome
