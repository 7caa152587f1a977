"""Fault drills on real processes: a worker, llama-server or Redis dying, two beats, a failing
group member. Each asserts that nothing is lost and no side effect happens twice."""

import os
import signal
import threading
import time
from urllib.parse import urlparse

import psutil
import pytest
import redis
from django.conf import settings

from agents.models import AgentCall, Checkpoint, Mode, Project, Task
from agents.services import submit_task
from gryphgen_site import bundle, stack
from guardians.models import Alert, DeadLetter, GuardianReport, ScheduledRun
from memory.models import MemoryEntry
from tests import stack_env
from tests.conftest import _llama, running_worker
from tests.helpers import database_url_for_processes, wait_for_task
from tests.test_workflow_branches import GOOD, HALF, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


def pool_child_talking_to(worker, port, timeout=30):
    """The worker's pool process with a connection open to `port` (the one inside an LLM call)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(worker.process.pid).children(recursive=True):
            try:
                if any(c.raddr and c.raddr.port == port for c in child.net_connections(kind="tcp")):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no pool process is talking to port {port}")


def test_sigkill_of_the_pool_process_mid_step_reruns_the_step_once(worker, llm, project, monkeypatch):
    llm.script("generate", GOOD)
    first_call = threading.Event()
    release = threading.Event()
    reply = llm.next_reply

    def held_once(purpose):
        if purpose == "generate" and not first_call.is_set():
            first_call.set()
            release.wait(30)  # the worker dies while this call is open
        return reply(purpose)

    monkeypatch.setattr(llm, "next_reply", held_once)
    task = submit_task(project, REQUEST)
    assert first_call.wait(60), "the generate step never called the LLM"
    victim = pool_child_talking_to(worker, urlparse(llm.url).port)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    release.set()

    task = wait_for_task(task, timeout=120)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert llm.purposes().count("generate") == 2  # the killed call, then the redelivered step
    assert Checkpoint.objects.filter(task=task).count() == 1  # one checkpoint, not two
    assert AgentCall.objects.filter(task=task, purpose="generate").count() == 1  # the dead call wrote nothing
    assert project.deployments.count() == 1
    assert worker.alive()  # the master replaced its pool process


def test_llama_server_killed_mid_call_fails_over_to_the_backup(transactional_db, smollm_url, project):
    primary_url, primary = _llama("llama-primary", bundle.smollm2_path(), 1, 2048)
    env = {"GRYPHGEN_LLM_URL": primary_url, "GRYPHGEN_LLM_BACKUP_URLS": smollm_url}
    try:
        with running_worker(env) as worker:
            task = submit_task(project, REQUEST, mode=Mode.SINGLE)
            pool_child_talking_to(worker, urlparse(primary_url).port, timeout=60)  # the call is open
            primary.process.send_signal(signal.SIGKILL)
            task = wait_for_task(task, timeout=180)
    finally:
        primary.stop()
    assert task.status in (Task.Status.ACCEPTED, Task.Status.FAILED), task.message  # the model's answer may vary
    calls = AgentCall.objects.filter(task=task, purpose="generate")
    assert calls.filter(endpoint=primary_url).exclude(error="").count() == 1  # the call the kill cut off
    served = calls.get(endpoint=smollm_url)
    assert served.error == "" and served.completion_tokens > 0
    assert Checkpoint.objects.filter(task=task).count() == 1 and not DeadLetter.objects.exists()
    lesson = MemoryEntry.objects.get(kind="lesson")
    assert lesson.metadata["resolution"] == f"failover to the backup endpoint {smollm_url}"


def test_queued_work_survives_a_redis_restart(transactional_db, llm, project):
    llm.script("generate", GOOD)
    tasks = [submit_task(project, REQUEST), submit_task(project, REQUEST)]  # no worker yet: they wait in Redis
    queue = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert queue.llen("default") == 2
    restart_redis()  # SIGTERM: Redis syncs its append-only file and exits
    assert redis.Redis.from_url(os.environ["REDIS_URL"]).llen("default") == 2
    with running_worker():
        done = [wait_for_task(t, timeout=120) for t in tasks]
    assert [t.status for t in done] == [Task.Status.ACCEPTED] * 2
    assert [t.checkpoints.count() for t in done] == [1, 1]
    assert project.deployments.count() == 2


def restart_redis(while_down=None):
    """Stop the test Redis, call `while_down`, start it again; returns what `while_down` returned."""
    stack_env.SERVICES["redis"].stop()
    assert not stack.answers_redis(os.environ["REDIS_URL"])
    try:
        return while_down() if while_down else None
    finally:
        stack_env.SERVICES["redis"] = stack.start_redis(
            os.environ["REDIS_URL"], stack_env.TEST_VAR / "redis", stack_env.TEST_VAR / "log"
        )


def test_a_task_submitted_while_redis_is_down_runs_once_redis_is_back(transactional_db, llm, project):
    """Stop Redis, submit, start Redis: the task is not left queued for good."""
    from datetime import timedelta

    from django.utils import timezone

    from agents.workflows import WAITING_FOR_QUEUE
    from guardians import recovery

    llm.script("generate", GOOD)
    task = restart_redis(lambda: submit_task(project, REQUEST))
    task.refresh_from_db()
    assert (task.status, task.sent, task.message) == (Task.Status.QUEUED, None, WAITING_FOR_QUEUE)
    assert recovery.send_unsent() == []  # within the grace period a send may still be in flight
    assert recovery.send_unsent(now=timezone.now() + timedelta(minutes=1)) == [task.pk]
    task.refresh_from_db()
    assert task.sent is not None and task.message == ""
    assert recovery.send_unsent(now=timezone.now() + timedelta(minutes=1)) == []  # sent once, not every cycle
    with running_worker():
        task = wait_for_task(task, timeout=120)
    assert task.status == Task.Status.ACCEPTED and task.checkpoints.count() == 1


def test_a_dead_letter_rerun_while_redis_is_down_stays_parked(transactional_db, project):
    from guardians import recovery

    task = Task.objects.create(project=project, request=REQUEST, status=Task.Status.ERROR, message="Needs attention")
    dead = DeadLetter.objects.create(
        task=task,
        step="agents.tasks.generate_step",
        args=[task.pk, 1, 0],
        chain=[],
        failure_class="server_unavailable",
        error="refused",
    )
    with pytest.raises(recovery.RerunRefused, match="task queue is unreachable"):
        restart_redis(lambda: recovery.rerun(dead.pk))
    dead.refresh_from_db()
    task.refresh_from_db()
    assert dead.requeued is None
    assert (task.status, task.message) == (Task.Status.ERROR, "Needs attention")


def test_two_beats_run_each_scheduled_job_once_per_due_time(transactional_db, project):
    env = {"GRYPHGEN_META_REVIEW_SECONDS": "2", "DATABASE_URL": database_url_for_processes()}
    logs = stack_env.TEST_VAR / "log"
    beats = [
        stack.start_beat(logs, logs / f"celerybeat-schedule-{i}", name=f"celery-beat-{i}", env=env) for i in (1, 2)
    ]
    try:
        with running_worker({"GRYPHGEN_META_REVIEW_SECONDS": "2"}):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and ScheduledRun.objects.filter(job="meta_review").count() < 4:
                time.sleep(0.5)
            time.sleep(1)  # let the last messages of the last due time land
    finally:
        for beat in beats:
            beat.stop()
    runs = ScheduledRun.objects.filter(job="meta_review")
    assert runs.count() >= 4
    dues = list(runs.values_list("due", flat=True))
    assert len(set(dues)) == len(dues)
    assert sum(runs.values_list("duplicates", flat=True)) >= 2  # both beats sent the job...
    claimed = runs.exclude(outcome="").count()
    assert GuardianReport.objects.filter(guardian="meta").count() == claimed  # ...and it ran once per due time


def test_a_failing_group_member_runs_the_error_path_once_and_keeps_the_last_good_code(worker, llm, project):
    Project.objects.filter(pk=project.pk).update(use_memory=False)  # the same request again: generate, not recall
    llm.script("generate", GOOD)
    earlier = wait_for_task(submit_task(project, REQUEST))
    assert earlier.status == Task.Status.ACCEPTED
    deployed = (project.workspace / "deployed").resolve()

    llm.reset()
    llm.script("generate", HALF)
    llm.fail_when = lambda purpose, body: purpose == "generate" and body["seed"] == settings.GRYPHGEN_LLM_SEED + 1
    task = wait_for_task(submit_task(project, REQUEST, mode=Mode.COMPETITIVE), timeout=120)
    assert task.status == Task.Status.ERROR and "Needs attention" in task.message
    time.sleep(2)  # the other candidates' steps finish (they find the task ended and stop)
    assert task.events.filter(stage="done").count() == 1  # the error path ran once
    dead = DeadLetter.objects.get(task=task)
    assert (dead.step, dead.args) == ("agents.tasks.generate_step", [task.pk, 1, 1])
    assert Alert.objects.get(task=task).count == 1
    candidates = Checkpoint.objects.filter(task=task)
    kept = set(candidates.values_list("candidate", flat=True))
    assert 0 in kept and 1 not in kept  # the others' work is kept; the failed member wrote nothing
    assert not candidates.filter(chosen=True).exists() and task.sandbox_runs.filter(purpose="deploy").count() == 0
    assert (project.workspace / "deployed").resolve() == deployed  # the last good code still runs
    assert project.deployments.count() == 1
