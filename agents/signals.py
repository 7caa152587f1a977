"""What the request workflow announces. The workflow never calls a guardian: it says what happened
here, and the guardians (guardians/apps.py) and anyone else subscribe, as Django's own signals
work. Receivers run in the sending worker, after the fact; one that fails is logged with its
traceback and never stops the step that announced.

    code_reviewed(checkpoint, review, when)    the code gate read a checkpoint's code ("ran" / "deployed")
    round_decided(checkpoint)                  a round's decision is committed
    deployed(task, checkpoint, deployment)     an accepted checkpoint is live
    failed_over(task, endpoint, backup, failures)  an LLM call needed a backup endpoint
    rollback_refused(project, target, error)   an owner's rollback could not be done
    step_retrying(step, task_id, args, attempt, error)  a step raised and Celery retries it
    step_recovered(step, task_id, attempts)    a step that had failed succeeded on a retry

A step that fails for good is not announced: it hands off to the recovery workflow
(agents.workflows.recovery_canvas).
"""

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

code_reviewed = Signal()
round_decided = Signal()
deployed = Signal()
failed_over = Signal()
rollback_refused = Signal()
step_retrying = Signal()
step_recovered = Signal()


def announce(signal: Signal, sender: str, **facts) -> None:
    for receiver, error in signal.send_robust(sender=sender, **facts):
        if isinstance(error, Exception):
            log.error("%s's receiver %s failed", sender, getattr(receiver, "__qualname__", receiver), exc_info=error)


def error_facts(exc: BaseException) -> dict:
    """An exception as plain data a message can carry: its class, the names of the classes it
    derives from (what the diagnostician classifies by), and its text."""
    kinds = [cls.__name__ for cls in type(exc).__mro__ if cls not in (BaseException, Exception, object)]
    return {"type": type(exc).__name__, "kinds": kinds, "text": str(exc)[:2000]}
