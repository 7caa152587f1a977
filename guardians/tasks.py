"""The guardians as Celery tasks, on the `guardians` queue, beside the steps they watch.

`watch_round` runs after each round's decision while the workflow goes on; the periodic jobs
(meta review, optimizer, stall reaper and resender) are sent by beat and claim their due time first, so two
beats never run one twice.
"""

from celery import shared_task
from django.conf import settings

from guardians import diagnostician, meta, optimizer, recovery, schedule, watcher


@shared_task(name="guardians.watch_round")
def watch_round(checkpoint_id):
    watcher.report_round(checkpoint_id)
    diagnostician.report_round(checkpoint_id)


def round_decided(sender, checkpoint, **kwargs):
    """agents.signals.round_decided: watch the round on the guardians queue."""
    watch_round.delay(checkpoint.pk)


@shared_task(name="guardians.diagnose_failure")
def diagnose_failure(step, args, attempt, error):
    return recovery.diagnose_failure(step, args, attempt, error)


@shared_task(name="guardians.park_failure")
def park_failure(diagnosis, step, args, chain, attempt):
    return recovery.park_failure(diagnosis, step, args, chain, attempt)


@shared_task(name="guardians.meta_review")
def meta_review():
    return schedule.run_once("meta_review", settings.GRYPHGEN_META_REVIEW_SECONDS, lambda: meta.review().pk)


@shared_task(name="guardians.propose")
def propose():
    return schedule.run_once(
        "propose", settings.GRYPHGEN_PROPOSE_SECONDS, lambda: f"{len(optimizer.propose())} proposal(s)"
    )


@shared_task(name="guardians.reap_stalled")
def reap_stalled():
    """Stop running tasks that stalled, and send again queued tasks the task queue never got."""
    return schedule.run_once(
        "reap_stalled",
        settings.GRYPHGEN_REAP_SECONDS,
        lambda: f"stopped tasks {recovery.reap_stalled()}; sent again {recovery.send_unsent()}",
    )
