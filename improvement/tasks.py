"""The improvement cycle as a Celery canvas, sent by beat (or the admin's button):

    open (gather proposals, build candidate versions, safety review, the trial rows)
      → run trials (one look; retried every GRYPHGEN_CYCLE_POLL_SECONDS until all are judged)
      → decide (the paired test; adopt, keep, or fail)

`canary` runs on its own schedule and watches what a cycle adopted."""

from celery import chain, shared_task
from django.conf import settings
from django.db.models import F

from improvement import cycle as cycles
from improvement.models import Cycle


def canvas():
    return chain(open_cycle.si(), run_trials.s(), decide_cycle.s())


@shared_task(name="improvement.start_cycle")
def start_cycle():
    if not settings.GRYPHGEN_CYCLES:
        return "cycles are off (GRYPHGEN_CYCLES)"
    canvas().apply_async()
    return "sent"


@shared_task(name="improvement.open_cycle")
def open_cycle():
    """Open a cycle, or take over the running one after a crash: its loop counter moves on, so a
    canvas still alive from before stops at its next look instead of running beside this one.
    [cycle id, loop], or None when there is nothing to run."""
    cycle = cycles.begin()
    if cycle is None or cycle.status != Cycle.Status.RUNNING:
        return None
    Cycle.objects.filter(pk=cycle.pk).update(loop=F("loop") + 1)
    cycle.refresh_from_db()
    return [cycle.pk, cycle.loop]


@shared_task(bind=True, name="improvement.run_trials", max_retries=None)
def run_trials(self, opened):
    if opened is None:
        return None
    cycle_id, loop = opened
    if not Cycle.objects.filter(pk=cycle_id, loop=loop).exists():
        return None  # a newer canvas owns this cycle
    if not cycles.advance(cycle_id):
        raise self.retry(countdown=settings.GRYPHGEN_CYCLE_POLL_SECONDS)
    return cycle_id


@shared_task(name="improvement.decide_cycle")
def decide_cycle(cycle_id):
    if cycle_id is None:
        return "nothing to decide"
    cycles.decide(Cycle.objects.get(pk=cycle_id))
    return Cycle.objects.get(pk=cycle_id).decision


@shared_task(name="improvement.canary")
def canary():
    return cycles.canary()
