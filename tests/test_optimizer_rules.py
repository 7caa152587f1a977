"""Each of the optimizer guardian's rules: it speaks on enough evidence, with the live policy's
current value, and stays silent below its threshold. (The loop rule runs a real workflow in
test_guardians.py.) Rows are written directly: the rules read only the database."""

import pytest
from django.utils import timezone

from agents import policy
from agents.models import AgentCall, Checkpoint, Project, Task
from guardians import optimizer
from guardians.models import GuardianReport, Proposal

pytestmark = pytest.mark.django_db(transaction=True)


def proposals():
    return {p.target: (p.current, p.proposed, p.status) for p in Proposal.objects.all()}


def finished_task(project, mode="pipeline", status="failed", **kwargs):
    return Task.objects.create(
        project=project, request="r", mode=mode, status=status, finished=timezone.now(), **kwargs
    )


@pytest.mark.parametrize("calls, broken, speaks", [(10, 3, True), (10, 2, False), (9, 9, False)])
def test_format_errors_ask_for_a_larger_answer_cap(project, calls, broken, speaks):
    task = finished_task(project)
    for i in range(calls):
        error = "model reply breaks the schema at reply: cut off" if i < broken else ""
        AgentCall.objects.create(task=task, role="analyzer", endpoint="e", prompt=[], error=error)
    optimizer.propose()
    cap = policy.values_of(policy.live()).max_tokens["analyzer"]
    assert proposals() == ({"max_tokens.analyzer": (cap, int(cap * 1.5), "proposed")} if speaks else {})


def test_repairs_that_rescue_nothing_propose_one_round_fewer(project):
    for _ in range(10):
        task = finished_task(project)
        for round_no in (1, 2):
            Checkpoint.objects.create(task=task, round=round_no, good=False)
    optimizer.propose()
    rounds = policy.values_of(policy.live()).max_rounds
    assert proposals() == {"max_rounds": (rounds, rounds - 1, "proposed")}


def test_tasks_that_pass_only_in_the_last_round_propose_one_round_more(project):
    rounds = policy.values_of(policy.live()).max_rounds
    for _ in range(10):
        task = finished_task(project, status="accepted")
        for round_no in range(1, rounds + 1):
            Checkpoint.objects.create(task=task, round=round_no, good=round_no == rounds)
    optimizer.propose()
    assert proposals() == {"max_rounds": (rounds, rounds + 1, "proposed")}


def test_staging_tasks_are_not_evidence_for_the_round_and_mode_rules(project, user):
    staging = Project.objects.create(owner=user, name="staging", staging=True)
    for _ in range(10):
        task = finished_task(staging)
        for round_no in (1, 2):
            Checkpoint.objects.create(task=task, round=round_no, good=False)
        finished_task(staging, mode="single", status="accepted")
        finished_task(staging, mode=policy.values_of(policy.live()).mode)
    assert optimizer.propose() == []


@pytest.mark.parametrize("timeouts, speaks", [(3, True), (2, False)])
def test_llm_timeouts_propose_a_longer_timeout_for_the_operator(project, settings, timeouts, speaks):
    task = finished_task(project)
    for _ in range(timeouts):
        GuardianReport.objects.create(
            task=task, guardian="diagnostician", failure_class="timeout", subject="s", findings={"step": "generate"}
        )
    optimizer.propose()
    current = settings.GRYPHGEN_LLM_TIMEOUT
    assert proposals() == ({"llm.timeout": (current, int(current * 1.5), "proposed")} if speaks else {})


@pytest.mark.parametrize("accepted, speaks", [(8, True), (3, False)])
def test_a_mode_that_wins_clearly_over_the_policys_is_proposed(project, accepted, speaks):
    mode = policy.values_of(policy.live()).mode
    for i in range(10):
        finished_task(project, mode=mode, status="accepted" if i < 3 else "failed")
        finished_task(project, mode="single", status="accepted" if i < accepted else "failed")
    optimizer.propose()
    assert proposals() == ({"mode": (mode, "single", "proposed")} if speaks else {})
