"""Progress events: persisted as TaskEvent rows and sent to the task's channel group.

`publish` is the one way a step reports progress: it writes the row and queues the push, which
this process's channel-layer thread sends in order (a step never waits for Redis).
"""

import asyncio
import logging
import os
import threading
import time

from channels.layers import get_channel_layer
from django.utils.timezone import localtime
from redis.exceptions import RedisError

from agents.bookkeeping import unflushed
from agents.models import TaskEvent

log = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 5
QUEUE_LIMIT = 1000  # events waiting for a slow or unreachable channel layer; more are dropped (the rows stay)
_sender_lock = threading.Lock()
_sender = None  # (pid, event loop, queue) of this process's channel-layer thread


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


def _channel_queue() -> tuple:
    """This process's sender: a daemon thread running an event loop that pushes queued events one
    at a time, in order. channels_redis keeps its connections per event loop, so one loop keeps one
    connection; and a step only queues its event, it never waits for Redis. Made anew after a fork."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop, queue = asyncio.new_event_loop(), asyncio.Queue(maxsize=QUEUE_LIMIT)
            threading.Thread(target=loop.run_forever, name="channel-layer", daemon=True).start()
            asyncio.run_coroutine_threadsafe(_push_queued(queue), loop)
            _sender = (os.getpid(), loop, queue)
        return _sender[1], _sender[2]


async def _push_queued(queue: asyncio.Queue) -> None:
    while True:
        task_id, payload = await queue.get()
        try:
            await asyncio.wait_for(get_channel_layer().group_send(group_name(task_id), payload), SEND_TIMEOUT_SECONDS)
        except (OSError, RedisError) as exc:  # TimeoutError is an OSError
            log.warning("progress push for task %s failed: %s", task_id, exc)
        except Exception:  # anything else: logged, and the pushes queued after it still go out
            log.exception("progress push for task %s failed", task_id)


def _offer(queue: asyncio.Queue, item: tuple) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        log.warning("progress push for task %s dropped: %s events wait for the channel layer", item[0], QUEUE_LIMIT)


def send(task_id: int, payload: dict) -> None:
    """Queue the push; the channel-layer thread sends it after the ones before it."""
    if get_channel_layer() is None:
        return
    loop, queue = _channel_queue()
    loop.call_soon_threadsafe(_offer, queue, (task_id, payload))


def publish(task, stage: str, message: str, **data) -> TaskEvent:
    """Record one step's progress and push it to anyone watching the task page.

    A broken channel layer never fails the workflow: the row is the record, the push is a courtesy.
    """
    with unflushed():
        event = TaskEvent.objects.create(task=task, stage=stage, message=message[:500], data=data)
    send(task.pk, event_payload(event, task.status))
    return event
