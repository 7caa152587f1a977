"""Live progress for one task over a websocket, for its owner only.

On connect the owner first gets the events stored so far, so nothing published between rendering
the page and subscribing, or during a reconnect, goes missing; a push of an event already sent
that way is dropped (pushes are queued by the publisher and may arrive after the replay; the page
also dedups by id, across reconnects).
A refused socket is accepted and then closed with 4403: a browser sees that code (a handshake
rejected before accept reads as 1006) and stops reconnecting.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from agents.models import Task
from agents.progress import event_payload, group_name


@database_sync_to_async
def owned_task(user, task_id):
    return Task.objects.filter(pk=task_id, project__owner=user).first()


@database_sync_to_async
def stored_events(task):
    task.refresh_from_db(fields=["status"])
    return [event_payload(event, task.status) for event in task.events.all()]


class TaskProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        self.task_id = int(self.scope["url_route"]["kwargs"]["task_id"])
        task = user is not None and user.is_authenticated and await owned_task(user, self.task_id)
        await self.accept()
        if not task:
            await self.close(code=4403)
            return
        self.group = group_name(self.task_id)
        self.replayed = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        for payload in await stored_events(task):
            await self.task_event(payload)
            self.replayed.add(payload["id"])

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def task_event(self, event):
        # group membership was checked at connect; check again that the event is this task's
        if event.get("task") == self.task_id and event.get("id") not in self.replayed:
            await self.send_json({k: v for k, v in event.items() if k != "type"})
