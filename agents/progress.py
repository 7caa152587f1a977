"""Progress events: persisted as TaskEvent rows and sent to the task's channel group.

`publish` is the one way a step reports progress. Tests swap `send` for a recorder.
"""

import asyncio
import logging
import os
import threading
import time

from channels.layers import get_channel_layer
from django.utils.timezone import localtime
from redis.exceptions import RedisError

from agents.models import TaskEvent

log = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 5
_sender_lock = threading.Lock()
_sender = None  # (pid, event loop) of this process's channel-layer thread


def follow(task, *, seconds: float, poll: float = 0.5):
    """Yield the task's stored events in order as they come, until it finishes (`task` is then
    refreshed: status and message) or `seconds` pass. For readers without the channel layer: the
    API's stream and the command-line client."""
    last, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for event in task.events.filter(id__gt=last).order_by("id"):
            last = event.pk
            yield event
        task.refresh_from_db(fields=["status", "message"])
        if task.is_finished:
            return
        time.sleep(poll)


def group_name(task_id: int) -> str:
    return f"task-{task_id}"


def event_payload(event: TaskEvent, status: str) -> dict:
    return {
        "type": "task.event",  # the consumer's handler: task_event
        "id": event.pk,
        "task": event.task_id,
        "stage": event.stage,
        "message": event.message,
        "data": event.data,
        "status": status,
        "created": event.created.isoformat(),
        "time": localtime(event.created).strftime("%H:%M:%S"),  # as the page's stored rows show it
    }


def _channel_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for the channel layer, on a daemon thread. channels_redis keeps its
    connections per event loop, so sending through a fresh loop each time (async_to_sync) opened a
    Redis connection per event, the largest cost of a step's bookkeeping. Made anew after a fork."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def send(task_id: int, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    sent = asyncio.run_coroutine_threadsafe(layer.group_send(group_name(task_id), payload), _channel_loop())
    sent.result(timeout=SEND_TIMEOUT_SECONDS)  # TimeoutError is an OSError: publish logs it


def publish(task, stage: str, message: str, **data) -> TaskEvent:
    """Record one step's progress and push it to anyone watching the task page.

    A broken channel layer never fails the workflow: the row is the record, the push is a courtesy.
    """
    event = TaskEvent.objects.create(task=task, stage=stage, message=message[:500], data=data)
    try:
        send(task.pk, event_payload(event, task.status))
    except (OSError, RedisError) as exc:
        log.warning("progress push for task %s failed: %s", task.pk, exc)
    return event
