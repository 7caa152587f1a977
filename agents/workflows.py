"""The request-processing workflow as Celery canvases; the one place they are built.

    route → plan verdict tests → [generate → analyze → execute → monitor → decide → deploy]
                                   ↑______ repair / revert: the next round ______|   (if accepted)

Messages carry ids only. `decide` starts the next round (on commit) or finishes the task.
"""

from celery import chain

from agents import tasks


def round_canvas(task_id: int, round_no: int):
    return chain(
        tasks.generate_step.si(task_id, round_no),
        tasks.analyze_step.si(task_id, round_no),
        tasks.execute_step.si(task_id, round_no),
        tasks.monitor_step.si(task_id, round_no),
        tasks.decide_step.si(task_id, round_no),
        tasks.deploy_step.si(task_id, round_no),
    )


def request_processing(task_id: int):
    return chain(tasks.route_step.si(task_id), tasks.plan_tests_step.si(task_id), round_canvas(task_id, 1))


def start(task_id: int) -> None:
    request_processing(task_id).apply_async()


def start_round(task_id: int, round_no: int) -> None:
    round_canvas(task_id, round_no).apply_async()
