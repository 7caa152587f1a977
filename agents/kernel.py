"""The step kernel: the bookkeeping every workflow step shares.

A step loads its task by id (`load_running`: None once the task is finished or gone), finds its
checkpoint only while it waits at the step's stage (`load_checkpoint`), and writes its result
together with its done-marker in one conditional update (`advance`), so a redelivered message
finds the work done and returns. `finish` moves a task to a terminal status exactly once;
`over_budget` says which budget a task has spent.
"""

from django.utils import timezone

from agents.bookkeeping import unflushed
from agents.models import Checkpoint, StopReason, Task
from agents.progress import publish


def load_running(task_id):
    """The task if it still needs work, else None (finished, deleted); with its project and policy
    version, which nearly every step reads."""
    task = Task.objects.select_related("project", "policy").filter(pk=task_id).first()
    if task is None or task.is_finished:
        return None
    return task


def load_checkpoint(task, round_no, stage, candidate=None):
    """The round's checkpoint if it waits at `stage`, else None (already past it, or missing).

    Without `candidate`: the round's chosen checkpoint (the one monitor and decide work on).
    """
    which = {"chosen": True} if candidate is None else {"candidate": candidate}
    return Checkpoint.objects.filter(task=task, round=round_no, stage=stage, **which).first()


def advance(checkpoint, from_stage, to_stage, **fields):
    """Write a step's result and its done-marker at once; False if another delivery won."""
    return bool(Checkpoint.objects.filter(pk=checkpoint.pk, stage=from_stage).update(stage=to_stage, **fields))


def finish(task, status, message, stop_reason=None):
    """Move the task to a terminal status once; later calls are no-ops."""
    if stop_reason is None:
        stop_reason = {Task.Status.ACCEPTED: StopReason.ACCEPTED, Task.Status.ERROR: StopReason.ERROR}.get(
            status, StopReason.GAVE_UP
        )
    done = Task.objects.filter(
        pk=task.pk, status__in=[Task.Status.QUEUED, Task.Status.RUNNING, Task.Status.HELD]
    ).update(status=status, message=message, stage=Task.Stage.DONE, finished=timezone.now(), stop_reason=stop_reason)
    if done:
        task.refresh_from_db()
        publish(task, "done", message, status=status)
    return bool(done)


def over_budget(task):
    """The budget the task has spent ("" if none): tokens, then wall time since it started."""
    if task.budget_tokens:
        if task.tokens_spent() >= task.budget_tokens:
            return StopReason.TOKENS
    if task.budget_seconds and task.started:
        if (timezone.now() - task.started).total_seconds() >= task.budget_seconds:
            return StopReason.WALL_TIME
    return ""


def at(task, stage):
    """Mark where the workflow is (Task.Stage), for the pages and the stall reaper."""
    with unflushed():
        Task.objects.filter(pk=task.pk).update(stage=stage)
