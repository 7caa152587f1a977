"""The canvas on a real Celery worker process, the real Redis broker and the real database."""

import pytest

from agents import pipeline
from agents.models import AgentCall, Checkpoint, SandboxRun, Task
from agents.services import submit_task
from gryphgen_site.stack import free_port
from tests.conftest import start_worker
from tests.helpers import wait_for_task
from tests.test_workflow_branches import BAD, GOOD, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_runs_repair_then_accept(worker, llm, project):
    llm.script("generate", BAD, GOOD)
    llm.script("decide", {"decision": "accept", "reason": "ok"})
    task = wait_for_task(submit_task(project, REQUEST))
    assert task.status == Task.Status.ACCEPTED, task.message
    assert list(task.checkpoints.values_list("round", "decision")) == [(1, "repair"), (2, "accept")]
    assert SandboxRun.objects.filter(task=task, purpose="verdict").count() == 2
    assert SandboxRun.objects.filter(task=task, purpose="deploy").get().status == "passed"
    assert AgentCall.objects.filter(task=task, role="generator").count() == 2


def test_llm_server_down_ends_with_clear_error(transactional_db, project):
    dead = f"http://127.0.0.1:{free_port()}"
    with start_worker({"GRYPHGEN_LLM_URL": dead}):
        task = wait_for_task(submit_task(project, REQUEST), timeout=60)
    assert task.status == Task.Status.ERROR
    assert "LLM server is unavailable" in task.message
    assert AgentCall.objects.filter(task=task, endpoint=dead).exclude(error="").count() == 2  # try + 1 retry
    assert not Checkpoint.objects.filter(task=task).exists()


def test_redelivered_steps_do_not_repeat_side_effects(eager, llm, project):
    llm.script("generate", GOOD)
    task = submit_task(project, REQUEST)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    cp = task.checkpoints.get()
    calls_before = AgentCall.objects.filter(task=task).count()
    # a broker redelivers every step of round 1 after the fact
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    for step in (pipeline.generate, pipeline.analyze, pipeline.execute, pipeline.monitor, pipeline.decide,
                 pipeline.deploy):  # fmt: skip
        step(task.pk, 1)
    task.refresh_from_db()
    assert task.checkpoints.count() == 1 and SandboxRun.objects.filter(task=task).count() == 2  # verdict + deploy
    assert project.deployments.count() == 1
    assert AgentCall.objects.filter(task=task).count() == calls_before  # every stage was already done
    assert Checkpoint.objects.get(pk=cp.pk).commit_sha == cp.commit_sha
