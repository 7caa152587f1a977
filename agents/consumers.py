"""Live progress for one task over a websocket, for its owner only."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from agents.models import Task
from agents.progress import group_name


@database_sync_to_async
def owns_task(user, task_id):
    return Task.objects.filter(pk=task_id, project__owner=user).exists()


class TaskProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        self.task_id = int(self.scope["url_route"]["kwargs"]["task_id"])
        if user is None or not user.is_authenticated or not await owns_task(user, self.task_id):
            await self.close(code=4403)
            return
        self.group = group_name(self.task_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def task_event(self, event):
        # group membership was checked at connect; check again that the event is this task's
        if event.get("task") == self.task_id:
            await self.send_json({k: v for k, v in event.items() if k != "type"})
