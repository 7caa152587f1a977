"""The task progress websocket: the owner sees events live; strangers and anonymous users are refused."""

import logging
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from redis.exceptions import RedisError

from agents import progress
from agents.consumers import TaskProgressConsumer
from agents.models import Task
from agents.progress import publish

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(user, task_id):
    app = TaskProgressConsumer.as_asgi()
    comm = WebsocketCommunicator(app, f"/ws/tasks/{task_id}/")
    comm.scope["user"] = user
    comm.scope["url_route"] = {"kwargs": {"task_id": task_id}}
    return comm


@pytest.fixture
def task(project):
    return Task.objects.create(project=project, request="Write `f()`.")


@pytest.mark.asyncio
async def test_owner_receives_progress_events(user, task):
    comm = communicator(user, task.pk)
    connected, _ = await comm.connect()
    assert connected
    await sync_to_async(publish)(task, "generate", "round 1: code generator writing", extra=1)
    event = await comm.receive_json_from(timeout=5)
    assert (event["task"], event["stage"], event["message"], event["data"]) == (
        task.pk, "generate", "round 1: code generator writing", {"extra": 1},
    )  # fmt: skip
    await comm.disconnect()


@pytest.mark.asyncio
async def test_stranger_is_refused(stranger, task):
    await sync_to_async(publish)(task, "generate", "secret progress")
    comm = communicator(stranger, task.pk)
    connected, _ = await comm.connect()
    assert connected  # accepted, then closed: browsers see 4403 only after accept
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


@pytest.mark.asyncio
async def test_anonymous_is_refused(task):
    comm = communicator(AnonymousUser(), task.pk)
    await comm.connect()
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


@pytest.mark.asyncio
async def test_events_of_other_tasks_do_not_leak(user, project, task):
    other = await sync_to_async(Task.objects.create)(project=project, request="Write `g()`.")
    comm = communicator(user, task.pk)
    await comm.connect()
    await sync_to_async(publish)(other, "generate", "other task")
    assert await comm.receive_nothing(timeout=0.5)
    await comm.disconnect()


@pytest.mark.asyncio
async def test_events_published_before_connecting_are_replayed(user, task):
    await sync_to_async(publish)(task, "route", "routed")
    comm = communicator(user, task.pk)
    await comm.connect()
    assert (await comm.receive_json_from(timeout=5))["message"] == "routed"
    await sync_to_async(publish)(task, "plan", "planned")
    assert (await comm.receive_json_from(timeout=5))["message"] == "planned"
    await comm.disconnect()


@pytest.mark.asyncio
async def test_a_burst_of_events_arrives_in_order_and_once(user, task):
    """Pushes are queued, not awaited by the step: they still arrive in the order published, and
    one already replayed on connect is not sent twice."""
    await sync_to_async(publish)(task, "route", "before connecting")
    comm = communicator(user, task.pk)
    await comm.connect()

    def burst():
        for n in range(20):
            publish(task, "generate", f"event {n}")

    await sync_to_async(burst)()
    messages = [(await comm.receive_json_from(timeout=5))["message"] for _ in range(21)]
    assert messages == ["before connecting"] + [f"event {n}" for n in range(20)]
    assert await comm.receive_nothing(timeout=0.5)
    await comm.disconnect()


class BrokenLayer:
    async def group_send(self, group, message):
        raise RedisError("the channel layer is down")


def test_a_broken_channel_layer_costs_the_push_not_the_event(task, monkeypatch, caplog):
    monkeypatch.setattr(progress, "get_channel_layer", BrokenLayer)
    with caplog.at_level(logging.WARNING, logger="agents.progress"):
        event = publish(task, "generate", "kept")
        deadline = time.monotonic() + 5
        while "the channel layer is down" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert f"progress push for task {task.pk} failed: the channel layer is down" in caplog.text
    assert list(task.events.values_list("pk", "message")) == [(event.pk, "kept")]


class FailingOnceLayer:
    """Refuses the first push with an error no channel layer should raise; records the rest."""

    def __init__(self):
        self.sent = []

    async def group_send(self, group, message):
        if not self.sent and message["message"] == "first":
            self.sent.append(None)
            raise ValueError("an unexpected failure")
        self.sent.append(message["message"])


def test_an_unexpected_push_failure_does_not_stop_the_pushes_after_it(task, monkeypatch, caplog):
    layer = FailingOnceLayer()
    monkeypatch.setattr(progress, "get_channel_layer", lambda: layer)
    with caplog.at_level(logging.ERROR, logger="agents.progress"):
        publish(task, "generate", "first")
        publish(task, "generate", "second")
        deadline = time.monotonic() + 5
        while "second" not in layer.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    assert layer.sent == [None, "second"]
    assert f"progress push for task {task.pk} failed" in caplog.text and "an unexpected failure" in caplog.text
