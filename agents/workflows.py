"""The request-processing workflows as Celery canvases; the one place they are built.

    route → plan verdict tests → round 1 → decision → round 2 → ... → deploy (if accepted)

    round (one candidate):  generate → analyze → execute → monitor → decide → deploy
    round (n candidates):   group of n × [generate → analyze → execute → choose]
                            the last `choose` picks one and starts: monitor → decide → deploy

Modes: `single` is one candidate, one round and no LLM review, monitor or optimizer call (the
baseline); `pipeline` is one candidate per round with repair rounds; `competitive` is n
candidates per round, chosen by tests, ties by the analyzer. Messages carry ids only;
`decide` starts the next round (on commit) or finishes the task.
"""

from celery import chain, group

from agents import tasks


def candidate_chain(task_id: int, round_no: int, candidate: int):
    return [
        tasks.generate_step.si(task_id, round_no, candidate),
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


def request_processing(task_id: int, candidates: int):
    return chain(tasks.route_step.si(task_id), tasks.plan_tests_step.si(task_id), round_canvas(task_id, 1, candidates))


def start(task_id: int, candidates: int = 1) -> None:
    request_processing(task_id, candidates).apply_async()


def start_round(task_id: int, round_no: int, candidates: int = 1) -> None:
    round_canvas(task_id, round_no, candidates).apply_async()


def start_decision(task_id: int, round_no: int) -> None:
    decision_canvas(task_id, round_no).apply_async()
