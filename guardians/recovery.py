"""Failure recovery (seed 003): diagnose → retry transient causes with backoff → fail over to
the next endpoint → park the step as a dead letter and raise an alert → remember the pattern.

Retries and failover happen inside a step (Celery's autoretry, the LLM client's endpoint list);
this module hears about them through agents.signals (`step_retrying`, `step_recovered`,
`failed_over`) and records reports and lessons. A step that fails for good hands off to the
recovery workflow (agents.workflows.recovery_canvas), whose guardian steps are
`diagnose_failure` and `park_failure` here. Alerts are rate-limited: a repeat of an open alert
(same owner, cause and step) counts up on one row and is logged at most once a minute.
"""

import logging
from datetime import timedelta

from celery import signature
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents import prompts, workflows
from agents.kernel import finish
from agents.models import Task
from gryphgen_site.celery import app
from guardians import diagnostician
from guardians.models import Alert, DeadLetter, FailureClass, GuardianReport
from memory import store
from memory.models import MemoryEntry

log = logging.getLogger(__name__)
LOG_EVERY = timedelta(minutes=1)
UNSENT_GRACE_SECONDS = 30  # a send still in flight is not a failed one


def raise_alert(task, failure_class, message, fingerprint):
    """Open an alert, or count up the open one with this fingerprint. Returns the Alert."""
    now = timezone.now()
    for _ in range(2):  # a concurrent first alert may win the insert; then count up on it
        alert = Alert.objects.filter(fingerprint=fingerprint, resolved__isnull=True).first()
        if alert is not None:
            Alert.objects.filter(pk=alert.pk).update(count=F("count") + 1, last_seen=now, task=task, message=message)
            if now - alert.last_seen >= LOG_EVERY:
                log.warning("alert %s repeats (%s so far): %s", alert.pk, alert.count + 1, fingerprint)
            alert.refresh_from_db()
            return alert
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    task=task, fingerprint=fingerprint, failure_class=failure_class, message=message[:2000]
                )
        except IntegrityError:
            continue
        log.warning("alert %s: %s", alert.pk, fingerprint)
        return alert
    raise IntegrityError(f"could not open or count up the alert {fingerprint}")


def fingerprint(task, failure_class, where):
    return f"owner {task.project.owner_id}: {failure_class} in {where}"[:200]


# --- lessons: what failed and what fixed it, kept in memory --------------------------------------


def lessons(task):
    return MemoryEntry.objects.filter(owner_id=task.project.owner_id, kind=MemoryEntry.Kind.LESSON)


def record_lesson(task, failure_class, key, resolution, evidence=""):
    """Remember a failure pattern and the fix that worked; a known one counts up. Staging tasks
    (the improvement cycle's trials) write no memory."""
    if task.project.staging:
        return None
    lesson = lessons(task).filter(metadata__fingerprint=key).first()
    if lesson is not None:
        lesson.metadata = {**lesson.metadata, "count": lesson.metadata.get("count", 1) + 1, "resolution": resolution}
        lesson.save(update_fields=["metadata"])
        return lesson
    label = FailureClass(failure_class).label if failure_class in FailureClass.values else failure_class
    lesson = MemoryEntry.objects.create(
        owner_id=task.project.owner_id,
        project=task.project,
        kind=MemoryEntry.Kind.LESSON,
        key=task.memory_key,
        content=f"{label}: {evidence[:500]}\nResolved by: {resolution}",
        metadata={"fingerprint": key, "failure_class": failure_class, "resolution": resolution, "count": 1},
    )
    store.embed_soon()
    return lesson


def record_repair(task, accepted):
    """After an accepted round that repaired failed ones: what failed first, and the code that fixed it.

    Only the verdict tests' evidence is used (the diagnostician's reports), never anything hidden.
    """
    if accepted.round == 1:
        return None
    failed = (
        GuardianReport.objects.filter(
            task=task, guardian=GuardianReport.Guardian.DIAGNOSTICIAN, checkpoint__round__lt=accepted.round
        )
        .exclude(failure_class="")
        .order_by("checkpoint__round")
        .first()
    )
    if failed is None:
        return None
    request = task.request.strip().splitlines()[0][:200]
    resolution = f"round {accepted.round} passed with:\n{prompts.code_block(accepted.files)[:1200]}"
    evidence = f"{request} — {failed.findings.get('evidence', '')}"
    return record_lesson(task, failed.failure_class, f"task {task.pk} repaired", resolution, evidence)


# --- the step's retries (agents.signals) and the recovery workflow (agents.workflows) ----------------


def _load(task_id):
    return Task.objects.select_related("project").filter(pk=task_id).first()


def _failure_report(task, step_name, args, attempt, diagnosis):
    lesson = lessons(task).filter(metadata__failure_class=diagnosis.failure_class).order_by("-id").first()
    return GuardianReport.objects.create(
        task=task,
        guardian=GuardianReport.Guardian.DIAGNOSTICIAN,
        severity=GuardianReport.Severity.WARNING,
        failure_class=diagnosis.failure_class,
        subject=f"{step_name} attempt {attempt}: {FailureClass(diagnosis.failure_class).label}",
        findings={
            "step": step_name,
            "args": list(args),
            "attempt": attempt,
            "transient": diagnosis.transient,
            "evidence": diagnosis.evidence,
            "at": timezone.now().isoformat(),
            "known": lesson and {"seen": lesson.metadata.get("count", 1), "resolution": lesson.metadata["resolution"]},
        },
        recommendation=diagnostician.RECOMMENDATIONS.get(diagnosis.failure_class, ""),
    )


def step_retrying(sender, step, task_id, args, attempt, error, **kwargs):
    """A transient failure Celery will retry: diagnose and record it."""
    task = _load(task_id)
    if task is not None:
        _failure_report(task, step, args, attempt, diagnostician.classify_error(error))


def step_recovered(sender, step, task_id, attempts, **kwargs):
    """A step that had failed succeeded on a retry: remember that retrying fixes this cause."""
    task = _load(task_id)
    last = task and GuardianReport.objects.filter(task=task, findings__step=step).order_by("-id").first()
    if last is None:
        return
    record_lesson(
        task, last.failure_class, fingerprint(task, last.failure_class, step),
        f"retrying with backoff ({attempts} attempt(s))", last.findings.get("evidence", ""),
    )  # fmt: skip


def failed_over(sender, task, endpoint, backup, failures, **kwargs):
    """An LLM call's backup endpoint answered: remember the failover."""
    key = fingerprint(task, FailureClass.SERVER_UNAVAILABLE, endpoint)
    record_lesson(
        task, FailureClass.SERVER_UNAVAILABLE, key, f"failover to the backup endpoint {backup}", "; ".join(failures)
    )


def repaired(sender, task, checkpoint, **kwargs):
    record_repair(task, checkpoint)


def rollback_refused(sender, project, target, error, **kwargs):
    raise_alert(
        None, FailureClass.DEPLOY_FAILED, f"{project}: not rolled back to {target.commit_sha[:10]}: {error}",
        f"owner {project.owner_id}: rollback of project {project.pk}",
    )  # fmt: skip


def diagnose_failure(step, args, attempt, error):
    """The recovery workflow's first step: why `step` failed for good, recorded as a report.
    Returns the diagnosis as data for the next step."""
    diagnosis = diagnostician.classify_error(error)
    task = _load(args[0])
    if task is not None:
        _failure_report(task, step, args, attempt, diagnosis)
    return {"failure_class": diagnosis.failure_class, "evidence": diagnosis.evidence}


def park_failure(diagnosis, step, args, chain, attempt):
    """The recovery workflow's second step: park the step with its history as a dead letter and
    raise an alert. Returns what the task's message says (the workflow's last step ends the task)."""
    task = _load(args[0])
    evidence = diagnosis["evidence"].rstrip(".")
    message = f"{step} failed ({FailureClass(diagnosis['failure_class']).label}): {evidence}."
    if task is None:
        return message
    key = fingerprint(task, diagnosis["failure_class"], step)
    try:
        with transaction.atomic():
            history = [r.findings for r in GuardianReport.objects.filter(task=task, findings__step=step).order_by("id")]
            dead = DeadLetter.objects.create(
                task=task, step=step, args=list(args), chain=chain or [],
                failure_class=diagnosis["failure_class"], error=diagnosis["evidence"], history=history,
            )  # fmt: skip
            known = history[-1].get("known") if history else None
            hint = f" Seen before ({known['seen']}×), resolved by {known['resolution']}." if known else ""
            raise_alert(task, diagnosis["failure_class"], f"Task #{task.pk}: {step} failed after "
                        f"{attempt} attempt(s): {evidence}.{hint}", key)  # fmt: skip
    except DatabaseError as db_exc:
        log.error("could not park %s for task %s: %s", step, task.pk, db_exc)
        return message
    return f"{message} Parked as dead letter #{dead.pk}: re-run it from the admin once fixed."


# --- dead letters and deadlines ------------------------------------------------------------------


class RerunRefused(Exception):
    pass


def rerun(dead_letter_id):
    """Re-queue a parked step and the steps that were to follow it; reopens its task once.

    The dead letter is claimed (marked requeued) under its row lock, then sent; if the task queue
    is unreachable the claim is undone, so the letter stays parked and the task in error."""
    with transaction.atomic():
        dead = DeadLetter.objects.select_for_update().select_related("task").get(pk=dead_letter_id)
        if dead.requeued:
            raise RerunRefused(f"dead letter #{dead.pk} was re-run at {dead.requeued:%Y-%m-%d %H:%M:%S}")
        if dead.task.status != Task.Status.ERROR:
            raise RerunRefused(f"task #{dead.task_id} is {dead.task.status}; only a task in error is re-run")
        before = Task.objects.values("finished", "stop_reason", "message").get(pk=dead.task_id)
        Task.objects.filter(pk=dead.task_id).update(
            status=Task.Status.RUNNING, finished=None, stop_reason="", message=f"re-running {dead.step}"
        )
        DeadLetter.objects.filter(pk=dead.pk).update(requeued=timezone.now())
    canvas = signature(dead.step, args=dead.args, app=app)
    for step in reversed(dead.chain):
        canvas |= signature(step, app=app)
    try:
        canvas.apply_async()
    except workflows.BROKER_ERRORS as exc:
        with transaction.atomic():
            DeadLetter.objects.filter(pk=dead.pk).update(requeued=None)
            Task.objects.filter(pk=dead.task_id, status=Task.Status.RUNNING).update(status=Task.Status.ERROR, **before)
        raise RerunRefused(
            f"the task queue is unreachable ({type(exc).__name__}); dead letter #{dead.pk} stays parked"
        ) from exc
    Alert.objects.filter(task=dead.task, resolved__isnull=True).update(resolved=timezone.now())
    return dead


def send_unsent(now=None):
    """Send again queued tasks whose first step never reached the task queue (the send failed), or
    reached it longer than GRYPHGEN_STALL_SECONDS ago without starting (a queue that lost it).
    Returns the ids sent."""
    now = now or timezone.now()
    waiting = Task.objects.filter(status=Task.Status.QUEUED).filter(
        Q(sent__isnull=True, created__lt=now - timedelta(seconds=UNSENT_GRACE_SECONDS))
        | Q(sent__lt=now - timedelta(seconds=settings.GRYPHGEN_STALL_SECONDS))
    )
    return [task.pk for task in waiting.order_by("created") if workflows.send_start(task)]


def reap_stalled(now=None):
    """End running tasks that made no progress within GRYPHGEN_STALL_SECONDS: no task hangs."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.GRYPHGEN_STALL_SECONDS)
    stalled = (
        Task.objects.filter(status=Task.Status.RUNNING)
        .annotate(last=Coalesce(Max("events__created"), "started", "created"))
        .filter(last__lt=deadline)
        .select_related("project")
    )
    reaped = []
    for task in stalled:
        message = f"No progress since {task.last:%H:%M:%S} (stage {task.stage or 'none'}): the task was stopped."
        if finish(task, Task.Status.ERROR, f"Needs attention: {message}"):
            raise_alert(task, FailureClass.STALLED, f"Task #{task.pk}: {message}",
                        fingerprint(task, FailureClass.STALLED, task.stage or "queue"))  # fmt: skip
            reaped.append(task.pk)
    return reaped
