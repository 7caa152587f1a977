"""The canvas on a real Celery worker process, the real Redis broker and the real database."""

import pytest

from agents import pipeline
from agents.models import AgentCall, Checkpoint, SandboxRun, Task
from agents.services import submit_task
from gryphgen_site.stack import free_port
from guardians.models import Alert, DeadLetter
from tests.conftest import running_worker
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
    tested = project.deployments.get().tested_by  # the first deploy puts exactly the tested tree live
    assert (tested.purpose, tested.status, tested.checkpoint.round) == ("verdict", "passed", 2)
    assert AgentCall.objects.filter(task=task, role="generator").count() == 2


def worker_backends():
    """The pids of the database's other client connections: the worker's, in these tests."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_the_worker_keeps_its_database_connections_and_replaces_one_the_database_dropped(
    transactional_db, llm, project
):
    """Celery's Django fixup would open a connection a task; the worker keeps them (for
    CONN_MAX_AGE, which the other tests set to 0), and one the database dropped between tasks is
    replaced before a step uses it."""
    from django.db import connection

    llm.script("generate", GOOD)
    with running_worker({"GRYPHGEN_DB_CONN_MAX_AGE": "60"}):
        assert wait_for_task(submit_task(project, REQUEST)).status == Task.Status.ACCEPTED
        kept = worker_backends()
        assert kept, "the worker closed its connections after its tasks"
        assert wait_for_task(submit_task(project, REQUEST)).status == Task.Status.ACCEPTED
        assert kept <= worker_backends()  # the same backends served the second task's steps
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [sorted(kept)])
        task = wait_for_task(submit_task(project, REQUEST))
        assert task.status == Task.Status.ACCEPTED, task.message
        assert not kept & worker_backends()


def test_llm_server_down_parks_the_step_and_the_admin_re_runs_it(transactional_db, llm, project, client):
    dead = f"http://127.0.0.1:{free_port()}"
    with running_worker({"GRYPHGEN_LLM_URL": dead}):
        task = wait_for_task(submit_task(project, REQUEST), timeout=60)
    assert task.status == Task.Status.ERROR
    assert "Needs attention" in task.message and "server unavailable" in task.message
    assert AgentCall.objects.filter(task=task, endpoint=dead).exclude(error="").count() == 2  # try + 1 retry
    assert not Checkpoint.objects.filter(task=task).exists()
    parked = DeadLetter.objects.get(task=task)
    assert [h["attempt"] for h in parked.history] == [1, 2] and Alert.objects.get(task=task).resolved is None
    # the steps that were to follow travel with it, so a re-run finishes the workflow
    assert [s["task"] for s in reversed(parked.chain)][:3] == [
        "agents.tasks.analyze_step", "agents.tasks.execute_step", "agents.tasks.monitor_step"
    ]  # fmt: skip
    llm.script("generate", GOOD)
    with running_worker():  # the server is back (a worker that reaches the scripted LLM)
        client.force_login(project.owner)
        client.post("/admin/guardians/deadletter/", {"action": "rerun", "_selected_action": [parked.pk]})
        task = wait_for_task(task, timeout=60)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.count() == 1 and project.deployments.count() == 1
    assert Alert.objects.get(task=task).resolved is not None


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
    # one verdict run, whose pass stood for the deploy of the same tree
    assert task.checkpoints.count() == 1 and SandboxRun.objects.filter(task=task).count() == 1
    assert project.deployments.count() == 1
    assert AgentCall.objects.filter(task=task).count() == calls_before  # every stage was already done
    assert Checkpoint.objects.get(pk=cp.pk).commit_sha == cp.commit_sha
