"""The HTTP API for programs (django-ninja; OpenAPI at /api/openapi.json, browsable at /api/docs).

Every call carries `Authorization: Bearer <key>` of one owner's token (`manage.py gryphgen token
create --owner NAME`); it reaches that owner's projects, tasks, deployments and memory only:
another owner's id answers 404, exactly like the pages.
"""

import json
from datetime import datetime

from django.core.exceptions import ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import NinjaAPI, Schema, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer

from agents import deploy, progress
from agents.models import Checkpoint, Deployment, Project, Task
from agents.services import submit_task
from api.models import ApiToken, digest
from memory import chunking, retrieval, store

STREAM_LIMIT = 3600  # seconds a stream stays open at most


class TokenAuth(HttpBearer):
    def authenticate(self, request, token):
        found = ApiToken.objects.select_related("owner").filter(key_hash=digest(token), revoked=None).first()
        if found is None or not found.owner.is_active:
            return None
        ApiToken.objects.filter(pk=found.pk).update(last_used=timezone.now())
        return found.owner


api = NinjaAPI(title="GRYPHGEN", version="1", auth=TokenAuth(), urls_namespace="api")


class ProjectOut(Schema):
    id: int
    name: str
    default_mode: str
    use_memory: bool


class TaskIn(Schema):
    request: str
    acceptance_tests: str = ""
    mode: str | None = None


class TaskOut(Schema):
    id: int
    project: int
    status: str
    stage: str
    mode: str
    message: str
    stop_reason: str
    policy_version: int | None
    created: datetime
    finished: datetime | None


class EventOut(Schema):
    id: int
    stage: str
    message: str
    created: datetime


class CodeOut(Schema):
    round: int | None
    accepted: bool
    files: dict[str, str]
    evidence: dict


class DeploymentOut(Schema):
    id: int
    kind: str
    commit_sha: str
    task: int
    current: bool
    created: datetime


class DocumentIn(Schema):
    name: str
    text: str
    project: int | None = None


class MemoryHitOut(Schema):
    id: int
    kind: str
    content: str
    score: float


def owned_project(request, pk) -> Project:
    return get_object_or_404(Project, pk=pk, owner=request.auth)


def owned_task(request, pk) -> Task:
    return get_object_or_404(Task.objects.select_related("policy"), pk=pk, project__owner=request.auth)


def task_out(task: Task) -> dict:
    return {
        "id": task.pk, "project": task.project_id, "status": task.status, "stage": task.stage, "mode": task.mode,
        "message": task.message, "stop_reason": task.stop_reason,
        "policy_version": task.policy.version if task.policy_id else None, "created": task.created,
        "finished": task.finished,
    }  # fmt: skip


@api.get("/projects", response=list[ProjectOut], summary="Your projects")
def projects(request):
    return Project.objects.filter(owner=request.auth, staging=False)


@api.post("/projects/{project_id}/tasks", response={201: TaskOut}, summary="Submit a request")
def submit(request, project_id: int, body: TaskIn):
    project = owned_project(request, project_id)
    try:
        task = submit_task(project, body.request, body.acceptance_tests, mode=body.mode or None)
    except ValidationError as exc:
        raise HttpError(400, " ".join(exc.messages)) from exc
    return Status(201, task_out(task))


@api.get("/tasks/{task_id}", response=TaskOut, summary="A task's status")
def task(request, task_id: int):
    return task_out(owned_task(request, task_id))


@api.get("/tasks/{task_id}/events", response=list[EventOut], summary="A task's progress events after `after`")
def events(request, task_id: int, after: int = 0):
    return owned_task(request, task_id).events.filter(id__gt=after).order_by("id")[:500]


@api.get("/tasks/{task_id}/stream", summary="The task's events as server-sent events, until it finishes")
def stream(request, task_id: int):
    task = owned_task(request, task_id)

    def sent():
        for event in progress.follow(task, seconds=STREAM_LIMIT):
            data = {
                "id": event.pk,
                "stage": event.stage,
                "message": event.message,
                "created": event.created.isoformat(),
            }
            yield f"id: {event.pk}\nevent: progress\ndata: {json.dumps(data)}\n\n"
        if task.is_finished:
            yield f"event: finished\ndata: {json.dumps({'status': task.status, 'message': task.message})}\n\n"

    response = StreamingHttpResponse(sent(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


@api.get("/tasks/{task_id}/code", response=CodeOut, summary="The accepted code (else the latest), with its evidence")
def code(request, task_id: int):
    task = owned_task(request, task_id)
    rounds = Checkpoint.objects.filter(task=task, chosen=True).order_by("-round")
    accepted = rounds.filter(decision=Checkpoint.Decision.ACCEPT).first()
    chosen = accepted or rounds.first()
    if chosen is None:
        raise HttpError(404, "No code was written for this task yet.")
    return {
        "round": chosen.round,
        "accepted": accepted is not None,
        "files": chosen.files,
        "evidence": chosen.evidence or {},
    }


@api.get("/projects/{project_id}/deployments", response=list[DeploymentOut], summary="Deployments, newest first")
def deployments(request, project_id: int):
    project = owned_project(request, project_id)
    now = deploy.current(project)
    return [
        {
            "id": d.pk,
            "kind": d.kind,
            "commit_sha": d.commit_sha,
            "task": d.checkpoint.task_id,
            "current": now is not None and d.pk == now.pk,
            "created": d.created,
        }  # fmt: skip
        for d in Deployment.objects.filter(project=project).select_related("checkpoint")[:200]
    ]


@api.get("/projects/{project_id}/download", summary="A zip of the tree deployed now")
def download(request, project_id: int):
    project = owned_project(request, project_id)
    current = deploy.current(project)
    if current is None:
        raise HttpError(404, "Nothing is deployed in this project yet.")
    name, data = deploy.tree_zip(current)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@api.post("/deployments/{deployment_id}/rollback", response={202: dict}, summary="Roll the project back to it")
def rollback(request, deployment_id: int):
    target = get_object_or_404(
        Deployment.objects.select_related("project"), pk=deployment_id, project__owner=request.auth
    )
    try:
        deploy.request_rollback(target, request.auth)
    except deploy.DeployError as exc:
        raise HttpError(409, str(exc)) from exc
    return Status(202, {"queued": True, "to": target.commit_sha})


@api.get("/memory/search", response=list[MemoryHitOut], summary="Your memories for a query, best first")
def memory_search(request, q: str, k: int = 10):
    if not q.strip() or not 1 <= k <= 50:
        raise HttpError(400, "Give a query, and k between 1 and 50.")
    result = retrieval.search(request.auth.pk, q, k=k)
    return [
        {"id": h.entry.pk, "kind": h.entry.kind, "content": h.entry.content[:2000], "score": h.score}
        for h in result.hits
    ]


@api.post("/memory", response={201: dict}, summary="Store a document in your memory (chunked, embedded soon)")
def memory_upload(request, body: DocumentIn):
    project = owned_project(request, body.project) if body.project is not None else None
    try:  # refuses a document over the size limit, binary or empty before writing anything
        entries = store.ingest_document(request.auth, body.name, body.text.encode(), project=project)
    except chunking.DocumentError as exc:
        raise HttpError(400, str(exc)) from exc
    return Status(201, {"chunks": len(entries)})
