"""The HTTP API: one owner's token reaches that owner's data only; bad input gets a clear 4xx."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import Deployment, Project, Task
from api.models import ApiToken
from tests.test_workflow_branches import BAD, GOOD, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(user):
    return ApiToken.issue(user, "tests")[1]


def call(client, method, path, key, body=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if body is not None:
        return getattr(client, method)(f"/api{path}", data=json.dumps(body), content_type="application/json", **headers)
    return getattr(client, method)(f"/api{path}", **headers)


def test_a_token_lists_its_owners_projects_only_and_a_bad_or_revoked_one_gets_401(client, project, stranger, key):
    Project.objects.create(owner=stranger, name="theirs")
    response = call(client, "get", "/projects", key)
    assert response.status_code == 200 and [p["name"] for p in response.json()] == ["demo"]
    assert call(client, "get", "/projects", None).status_code == 401
    assert call(client, "get", "/projects", "gg_not-a-key").status_code == 401
    ApiToken.objects.update(revoked=timezone.now())
    assert call(client, "get", "/projects", key).status_code == 401
    assert ApiToken.objects.get().last_used is not None  # the live call was recorded; the key never is
    assert key not in json.dumps(list(ApiToken.objects.values()), default=str)


def test_submit_follow_and_read_the_code_of_a_task(client, eager, llm, project, key):
    llm.script("generate", GOOD)
    response = call(client, "post", f"/projects/{project.pk}/tasks", key, {"request": REQUEST, "mode": "single"})
    assert response.status_code == 201, response.content
    task_id = response.json()["id"]
    status = call(client, "get", f"/tasks/{task_id}", key).json()
    assert status["status"] == "accepted" and status["mode"] == "single" and status["policy_version"] == 1
    events = call(client, "get", f"/tasks/{task_id}/events", key).json()
    assert events and call(client, "get", f"/tasks/{task_id}/events?after={events[-1]['id']}", key).json() == []
    code = call(client, "get", f"/tasks/{task_id}/code", key).json()
    assert code["accepted"] and "def slugify" in code["files"]["solution.py"]
    streamed = b"".join(call(client, "get", f"/tasks/{task_id}/stream", key).streaming_content).decode()
    assert (
        streamed.count("event: progress") == len(events) and 'event: finished\ndata: {"status": "accepted"' in streamed
    )


def test_bad_requests_get_a_clear_400(client, project, key):
    for body, words in (({"request": "   "}, "request"), ({"request": REQUEST, "mode": "yolo"}, "Unknown mode")):
        response = call(client, "post", f"/projects/{project.pk}/tasks", key, body)
        assert response.status_code == 400 and words in response.json()["detail"]
    assert call(client, "post", f"/projects/{project.pk}/tasks", key, {"nothing": 1}).status_code == 422
    assert call(client, "get", "/memory/search?q=", key).status_code == 400
    assert (
        call(client, "get", f"/projects/{project.pk}/download", key).json()["detail"].startswith("Nothing is deployed")
    )
    assert not Task.objects.exists()


def test_another_owners_ids_are_404_everywhere(client, eager, llm, project, stranger, key):
    llm.script("generate", GOOD)
    theirs = Project.objects.create(owner=stranger, name="theirs")
    mine = call(client, "post", f"/projects/{project.pk}/tasks", key, {"request": REQUEST, "mode": "single"}).json()
    deployment = Deployment.objects.get()
    other_key = ApiToken.issue(stranger, "theirs")[1]
    for method, path in (
        ("get", f"/tasks/{mine['id']}"), ("get", f"/tasks/{mine['id']}/events"), ("get", f"/tasks/{mine['id']}/code"),
        ("get", f"/tasks/{mine['id']}/stream"), ("get", f"/projects/{project.pk}/deployments"),
        ("post", f"/deployments/{deployment.pk}/rollback"), ("get", f"/projects/{project.pk}/download"),
    ):  # fmt: skip
        assert call(client, method, path, other_key).status_code == 404, path
    assert call(client, "post", f"/projects/{theirs.pk}/tasks", key, {"request": REQUEST}).status_code == 404
    assert call(client, "post", "/memory", key, {"name": "n.md", "text": "x", "project": theirs.pk}).status_code == 404


def test_deployments_and_rollback(client, eager, llm, project, key, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2
    llm.script("generate", GOOD)
    first = call(client, "post", f"/projects/{project.pk}/tasks", key, {"request": REQUEST, "mode": "single"}).json()
    second = call(
        client, "post", f"/projects/{project.pk}/tasks", key, {"request": REQUEST + "\nAlso strip.\n", "mode": "single"}
    ).json()
    listed = call(client, "get", f"/projects/{project.pk}/deployments", key).json()
    assert [d["task"] for d in listed] == [second["id"], first["id"]] and listed[0]["current"]
    assert call(client, "post", f"/deployments/{listed[0]['id']}/rollback", key).status_code == 409  # already there
    assert call(client, "post", f"/deployments/{listed[1]['id']}/rollback", key).status_code == 202
    now = call(client, "get", f"/projects/{project.pk}/deployments", key).json()[0]
    assert now["kind"] == "rollback" and now["current"] and now["task"] == first["id"]
    zipped = call(client, "get", f"/projects/{project.pk}/download", key)
    assert zipped.status_code == 200 and zipped["Content-Type"] == "application/zip" and zipped.content[:2] == b"PK"


def test_memory_upload_and_search_stay_with_their_owner(client, project, key, stranger):
    text = "Our invoices are numbered INV-YYYY-NNNN and never reused."
    assert call(client, "post", "/memory", key, {"name": "invoices.md", "text": text}).json() == {"chunks": 1}
    from memory import embeddings

    embeddings.embed_pending()
    hits = call(client, "get", "/memory/search?q=invoice numbering", key).json()
    assert hits and "INV-YYYY-NNNN" in hits[0]["content"]
    assert call(client, "get", "/memory/search?q=invoice numbering", ApiToken.issue(stranger, "s")[1]).json() == []


def test_the_openapi_description_lists_every_route_and_the_docs_need_no_cdn(client):
    docs = client.get("/api/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/projects", "/api/projects/{project_id}/tasks", "/api/tasks/{task_id}/stream",
            "/api/deployments/{deployment_id}/rollback", "/api/memory/search"} <= set(paths)  # fmt: skip


def test_the_command_line_client_follows_a_task_and_fails_with_it(eager, llm, project, user, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2
    out = StringIO()
    llm.script("generate", GOOD)
    call_command("gryphgen", "submit", REQUEST, "--owner", "owner", "--project", "demo", "--mode", "single", stdout=out)
    said = out.getvalue()
    assert "queued" in said and ": accepted: Accepted round 1" in said and "generate" in said
    llm.reset()
    llm.script("generate", BAD)
    with pytest.raises(CommandError, match="was not accepted"):
        call_command("gryphgen", "submit", REQUEST + "\n", "--owner", "owner", "--project", str(project.pk),
                     "--mode", "single", stdout=StringIO())  # fmt: skip
    with pytest.raises(CommandError, match="has no project 'nope'"):
        call_command("gryphgen", "submit", REQUEST, "--owner", "owner", "--project", "nope")
    made = StringIO()
    call_command("gryphgen", "token", "create", "--owner", "owner", "--name", "ci", stdout=made)
    prefix = ApiToken.objects.get(name="ci").prefix
    assert prefix in made.getvalue() and "only its hash is stored" in made.getvalue()
    call_command("gryphgen", "token", "revoke", prefix, "--owner", "owner", stdout=StringIO())
    assert ApiToken.objects.get(name="ci").revoked is not None
