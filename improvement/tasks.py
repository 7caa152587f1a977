"""The improvement cycle's Celery tasks: beat starts a cycle (or resumes the running one), a
polling loop advances it until it decides, and the canary watches what was adopted."""

from celery import shared_task
from django.conf import settings
from django.db.models import F

from improvement import cycle as cycles
from improvement.models import Cycle


@shared_task(name="improvement.start_cycle")
def start_cycle():
    """Open a cycle, or take over the running one after a crash: its loop counter moves on, so a
    loop still alive from before stops at its next look instead of running beside this one."""
    cycle = cycles.begin()
    if cycle is None:
        return "cycles are off (GRYPHGEN_CYCLES)"
    if cycle.status != Cycle.Status.RUNNING:
        return cycle.decision
    Cycle.objects.filter(pk=cycle.pk).update(loop=F("loop") + 1)
    cycle.refresh_from_db()
    advance.delay(cycle.pk, cycle.loop)
    return f"{cycle}: advancing"


@shared_task(name="improvement.advance")
def advance(cycle_id, loop):
    if not Cycle.objects.filter(pk=cycle_id, loop=loop).exists():
        return "a newer loop owns this cycle"
    if cycles.advance(cycle_id):
        return Cycle.objects.get(pk=cycle_id).decision
    advance.apply_async((cycle_id, loop), countdown=settings.GRYPHGEN_CYCLE_POLL_SECONDS)
    return "waiting"


@shared_task(name="improvement.canary")
def canary():
    return cycles.canary()
