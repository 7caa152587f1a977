"""The request-processing workflows as Celery canvases; the one place they are built.

    route → plan verdict tests → answer from memory → round 1 → decision → round 2 → ... → deploy (if accepted)

    round (one candidate):  generate → analyze → execute → monitor → decide → deploy
    round (n candidates):   group of n × [generate → analyze → execute → choose]
                            the last `choose` picks one and starts: monitor → decide → deploy
    consensus round:        plan inputs → generate (draft) → analyze → execute → judge
                            the judge may start a batch: group of n × [generate → analyze → execute → judge]
                            the judge that decides starts: monitor → decide → deploy
    hierarchical round 1:   split → group of parts × [generate_part → integrate]
                            the last `integrate` starts: analyze → execute → monitor → decide → deploy

    recovery (a step failed for good, its retries and failover spent):
                            diagnose (guardians) → park and alert (guardians) → end the task in error

Modes: `single` is one candidate, one round and no LLM review, monitor or optimizer call (the
baseline); `pipeline` is one candidate per round with repair rounds; `competitive` and
`collaborative` are n candidates per round (chosen by tests, ties by the analyzer or by the
judges' vote); `debate` is pipeline with two critics arguing in the monitor step;
`hierarchical` splits round 1 into parts (see agents/cooperation.py); `consensus` samples
candidates in batches and lets their behaviour vote, escalating to the stronger model when
unsure (see agents/consensus.py). Joins are counted in the
database, so no result backend is needed. Messages carry ids only; `decide` starts the next
round (on commit) or finishes the task. When memory answers the request (agents/reuse.py), that
step deploys and finishes the task, and the first round's steps find it finished and stop.
"""

import logging

import kombu.exceptions
from celery import chain, group, signature
from django.utils import timezone

from agents import tasks
from gryphgen_site.celery import app

log = logging.getLogger(__name__)
BROKER_ERRORS = (OSError, kombu.exceptions.OperationalError)  # the task queue (Redis) is unreachable
WAITING_FOR_QUEUE = "Waiting for the task queue, which is unreachable; the task is sent again automatically."


def candidate_chain(task_id: int, round_no: int, candidate: int, model: str = "", variant: int | None = None):
    return [
        tasks.generate_step.si(task_id, round_no, candidate, *((model, variant) if model else ())),
        tasks.analyze_step.si(task_id, round_no, candidate),
        tasks.execute_step.si(task_id, round_no, candidate),
    ]


def decision_canvas(task_id: int, round_no: int):
    return chain(
        tasks.monitor_step.si(task_id, round_no),
        tasks.decide_step.si(task_id, round_no),
        tasks.deploy_step.si(task_id, round_no),
    )


def round_canvas(task_id: int, round_no: int, candidates: int):
    if candidates == 1:
        return chain(*candidate_chain(task_id, round_no, 0), decision_canvas(task_id, round_no))
    return group(
        chain(*candidate_chain(task_id, round_no, c), tasks.choose_step.si(task_id, round_no))
        for c in range(candidates)
    )


def parts_canvas(task_id: int, parts: int):
    return group(chain(tasks.generate_part_step.si(task_id, i), tasks.integrate_step.si(task_id)) for i in range(parts))


def integrated_canvas(task_id: int):
    return chain(
        tasks.analyze_step.si(task_id, 1, 0), tasks.execute_step.si(task_id, 1, 0), decision_canvas(task_id, 1)
    )


def draft_canvas(task_id: int):
    return chain(tasks.plan_inputs_step.si(task_id), *candidate_chain(task_id, 1, 0), tasks.judge_step.si(task_id, 1))


def batch_canvas(task_id: int, round_no: int, first: int, model: str, variants: list):
    return group(
        chain(*candidate_chain(task_id, round_no, first + i, model, variant), tasks.judge_step.si(task_id, round_no))
        for i, variant in enumerate(variants)
    )


def request_processing(task_id: int, candidates: int, hierarchical: bool = False, consensus: bool = False):
    if consensus:
        first = draft_canvas(task_id)
    elif hierarchical:
        first = tasks.split_step.si(task_id)
    else:
        first = round_canvas(task_id, 1, candidates)
    return chain(
        tasks.route_step.si(task_id),
        tasks.plan_tests_step.si(task_id),
        tasks.answer_from_memory_step.si(task_id),
        first,
    )


def start(task_id: int, candidates: int = 1, hierarchical: bool = False, consensus: bool = False) -> None:
    request_processing(task_id, candidates, hierarchical, consensus).apply_async()


def send_start(task) -> bool:
    """Send a queued task's first step. If the task queue is unreachable the task stays queued, says
    so, and `guardians.recovery.send_unsent` sends it again later; the first step's claim makes a
    second delivery a no-op. True if sent."""
    from agents.models import CONSENSUS_MODES, Mode, Task

    try:
        start(task.pk, task.candidates, task.mode == Mode.HIERARCHICAL, task.mode in CONSENSUS_MODES)
    except BROKER_ERRORS as exc:
        log.warning("task %s stays queued: the task queue is unreachable (%s)", task.pk, type(exc).__name__)
        Task.objects.filter(pk=task.pk, status=Task.Status.QUEUED).update(message=WAITING_FOR_QUEUE)
        return False
    Task.objects.filter(pk=task.pk).update(sent=timezone.now())
    Task.objects.filter(pk=task.pk, status=Task.Status.QUEUED, message=WAITING_FOR_QUEUE).update(message="")
    return True


def start_batch(task_id: int, round_no: int, first: int, model: str, variants: list) -> None:
    batch_canvas(task_id, round_no, first, model, variants).apply_async()


def start_parts(task_id: int, parts: int) -> None:
    parts_canvas(task_id, parts).apply_async()


def start_integrated(task_id: int) -> None:
    integrated_canvas(task_id).apply_async()


def start_round(task_id: int, round_no: int, candidates: int = 1) -> None:
    round_canvas(task_id, round_no, candidates).apply_async()


def start_decision(task_id: int, round_no: int) -> None:
    decision_canvas(task_id, round_no).apply_async()


def recovery_canvas(step: str, args: list, rest: list, attempts: int, error: dict):
    """The failure-recovery workflow for a step that failed for good. The guardians' steps are sent
    by name (this app never imports them): `guardians.diagnose_failure` records why, and its
    diagnosis feeds `guardians.park_failure`, which parks the step and the rest of its chain
    (`rest`) as a dead letter and raises an alert; its message ends the task."""
    return chain(
        signature("guardians.diagnose_failure", args=(step, args, attempts, error), app=app),
        signature("guardians.park_failure", args=(step, args, rest, attempts), app=app),
        tasks.end_in_error.s(args[0]),
    )


def recover(step: str, args: list, rest: list, attempts: int, error: dict) -> None:
    """Start the recovery workflow; when the task queue cannot take it, end the task here, saying so."""
    try:
        recovery_canvas(step, args, rest, attempts, error).apply_async()
    except BROKER_ERRORS as exc:
        log.error("recovery of %s for task %s could not be sent: %s", step, args[0], type(exc).__name__)
        tasks.end_in_error(f"{step} failed ({error['type']}: {error['text'][:300]}); the task queue was "
                           "unreachable, so it was not parked", args[0])  # fmt: skip
