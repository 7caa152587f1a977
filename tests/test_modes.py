"""Modes and budgets: single (the baseline), pipeline, competitive; every mode keeps the same books."""

import time

import pytest
from django.core.exceptions import ValidationError

from agents import pipeline
from agents.models import AgentCall, Checkpoint, Task
from agents.services import submit_task
from tests.helpers import wait_for_task
from tests.test_workflow_branches import BAD, GOOD, HALF, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


def run(project, **kwargs):
    task = submit_task(project, REQUEST, **kwargs)
    task.refresh_from_db()
    return task


def test_single_mode_is_one_generator_call_and_nothing_else(eager, llm, project):
    llm.script("generate", GOOD)
    task = run(project, mode="single")
    assert (task.status, task.stop_reason, task.max_rounds) == (Task.Status.ACCEPTED, "accepted", 1)
    assert llm.purposes() == ["generate"]
    assert task.checkpoints.get().decision == "accept" and project.deployments.count() == 1


def test_single_mode_does_not_loop_on_failure(eager, llm, project):
    llm.script("generate", BAD)
    task = run(project, mode="single", max_rounds=5)
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "rounds")
    assert llm.purposes() == ["generate"] and task.checkpoints.count() == 1


def test_competitive_mode_chooses_the_candidate_that_passes(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 3
    llm.script("generate", BAD, GOOD, HALF)
    task = run(project, mode="competitive")
    assert task.status == Task.Status.ACCEPTED, task.message
    candidates = task.checkpoints.order_by("candidate")
    assert [(c.candidate, c.tests_passed, c.chosen) for c in candidates] == [(0, 0, False), (1, 3, True), (2, 1, False)]
    assert candidates.get(chosen=True).decision == "accept"
    assert llm.purposes() == ["generate"] * 3 + ["monitor_verdict", "decide"]
    seeds = [r["body"]["seed"] for r in llm.requests if r["purpose"] == "generate"]
    temperatures = [r["body"]["temperature"] for r in llm.requests if r["purpose"] == "generate"]
    assert len(set(seeds)) == 3 and temperatures[0] < temperatures[1] == temperatures[2]
    assert "candidate 2 chosen" in task.events.get(stage="choose").message
    assert AgentCall.objects.filter(task=task, purpose="generate", checkpoint__isnull=False).count() == 3


def test_competitive_ties_go_to_fewer_analyzer_errors(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 2
    unused_import = GOOD.replace("import re\n", "import re\nimport os\n")  # ruff F401: a warning, not an error
    undefined = GOOD.replace('"-")\n```', '"-") or undefined_name\n```')  # F821: an error
    llm.script("generate", undefined, unused_import)
    task = run(project, mode="competitive")
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.get(chosen=True).candidate == 1


def test_a_redelivered_choose_decides_once(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 2
    llm.script("generate", GOOD)
    task = run(project, mode="competitive")
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    pipeline.choose(task.pk, 1)
    assert llm.purposes().count("decide") == 1 and task.checkpoints.filter(chosen=True).count() == 1


def test_competitive_candidates_run_in_parallel_on_a_real_worker(worker, llm, project, settings):
    llm.script("generate", BAD, GOOD, BAD)
    task = wait_for_task(submit_task(project, REQUEST, mode="competitive"), timeout=120)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.count() == 3 and task.checkpoints.get(chosen=True).tests_passed == 3
    assert list(task.events.filter(stage="choose").values_list("stage", flat=True)) == ["choose"]


def test_token_budget_stops_the_loop_with_a_reason(eager, llm, project):
    llm.script("generate", BAD)
    task = run(project, budget_tokens=1)
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "tokens")
    assert "token budget spent" in task.message and task.checkpoints.count() == 1


def test_wall_time_budget_stops_the_loop_with_a_reason(eager, llm, project, monkeypatch):
    llm.script("generate", BAD)
    reply = llm.next_reply

    def slow(purpose):
        time.sleep(1.2 if purpose == "generate" else 0)
        return reply(purpose)

    monkeypatch.setattr(llm, "next_reply", slow)
    task = run(project, budget_seconds=1)
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "wall_time")
    assert task.checkpoints.count() == 1 and "wall-time budget spent" in task.message


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mode": "telepathy"}, "Unknown mode 'telepathy'"),
        ({"budget_tokens": 0}, "token budget must be a positive"),
        ({"budget_seconds": -5}, "wall-time budget must be a positive"),
        ({"max_rounds": 0}, "number of rounds must be a positive"),
    ],
)
def test_bad_mode_and_budgets_are_refused_before_anything_runs(project, kwargs, error):
    with pytest.raises(ValidationError, match=error):
        submit_task(project, REQUEST, **kwargs)
    assert not Task.objects.exists() and not Checkpoint.objects.exists()
