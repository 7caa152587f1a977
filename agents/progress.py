"""Progress events: persisted as TaskEvent rows and sent to the task's channel group.

`publish` is the one way a step reports progress. Tests swap `send` for a recorder.
"""

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.timezone import localtime
from redis.exceptions import RedisError

from agents.models import TaskEvent

log = logging.getLogger(__name__)


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


def send(task_id: int, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group_name(task_id), payload)


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
