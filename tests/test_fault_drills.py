"""Fault drills on real processes: what survives a worker that dies mid-step."""

import signal
import threading
import time
from urllib.parse import urlparse

import psutil
import pytest

from agents.models import AgentCall, Checkpoint, Task
from agents.services import submit_task
from tests.helpers import wait_for_task
from tests.test_workflow_branches import GOOD, REQUEST

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
