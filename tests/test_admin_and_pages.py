"""Models, admin pages and the owner's pages, including bad input at the form."""

import asyncio

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents.models import AgentCall, Checkpoint, Deployment, Policy, Project, SandboxRun, Task
from guardians.models import GuardianReport
from memory.models import MemoryEntry
from tests.test_workflow_branches import GOOD, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def finished_task(eager, llm, project):
    from agents.services import submit_task

    llm.script("generate", GOOD)
    task = submit_task(project, REQUEST)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    return task


def test_admin_lists_and_change_pages(client, user, finished_task):
    client.force_login(user)
    for model in (Project, Task, Checkpoint, AgentCall, SandboxRun, Deployment, GuardianReport, MemoryEntry, Policy):
        meta = model._meta
        response = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert response.status_code == 200, meta.model_name
        obj = model.objects.first()
        response = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
        assert response.status_code == 200, meta.model_name
    page = client.get(reverse("admin:agents_task_change", args=[finished_task.pk])).content.decode()
    assert "Checkpoints" in page and "Agent calls" in page and "Sandbox runs" in page


def test_admin_creates_project_and_submits_task(client, user, eager, llm):
    client.force_login(user)
    response = client.post(
        reverse("admin:agents_project_add"),
        {"owner": user.pk, "name": "p1", "default_mode": "pipeline", "hold_below": 0},
    )
    assert response.status_code == 302
    project = Project.objects.get(name="p1")
    llm.script("generate", GOOD)
    response = client.post(
        reverse("admin:agents_task_add"),
        {
            "project": project.pk,
            "request": REQUEST,
            "acceptance_tests": "",
            "mode": "pipeline",
            "max_rounds": 2,
            "budget_tokens": 0,
            "budget_seconds": 0,
        },  # fmt: skip
    )
    assert response.status_code == 302
    task = Task.objects.get(project=project)
    assert task.status == Task.Status.ACCEPTED and task.max_rounds == 2


def test_task_page_is_owner_only(client, user, stranger, finished_task):
    url = finished_task.get_absolute_url()
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(stranger)
    assert client.get(url).status_code == 404
    client.force_login(user)
    page = client.get(url).content.decode()
    assert "accepted" in page and "ws/tasks/" in page and "slugify" in page


@pytest.mark.parametrize(
    "data, error",
    [
        ({"request": "   "}, "This field is required"),
        ({"request": "x" * (64 * 1024 + 1)}, "the limit is 65,536"),
        ({"request": "ok", "acceptance_file": SimpleUploadedFile("t.py", b"\xff\xfe bad")}, "not UTF-8"),
        ({"request": "ok", "acceptance_tests": "def test(:\n"}, "not valid Python"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(client, user, project, data, error):
    client.force_login(user)
    response = client.post(project.get_absolute_url(), data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Task.objects.exists()


def test_project_page_submits_and_redirects_to_task(client, user, project, eager, llm):
    llm.script("generate", GOOD)
    client.force_login(user)
    response = client.post(project.get_absolute_url(), {"request": REQUEST})
    task = Task.objects.get()
    assert response.status_code == 302 and response.url == task.get_absolute_url()


@pytest.mark.asyncio
async def test_asgi_app_serves_admin_static_files():
    from gryphgen_site.asgi import application

    sent, incoming = [], [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # the client never disconnects

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/static/admin/css/base.css", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1")], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}  # fmt: skip
    await application(scope, receive, send)
    assert sent[0]["status"] == 200
    assert b"body" in b"".join(m.get("body", b"") for m in sent[1:])


def test_staff_owner_sees_only_own_rows_in_admin(client, django_user_model, finished_task):
    from django.contrib.auth.models import Permission

    other = django_user_model.objects.create_user("other-owner", password="pw", is_staff=True)
    other.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["agents", "guardians"]))
    client.force_login(other)
    names = ("agents_project", "agents_task", "agents_checkpoint", "agents_agentcall", "agents_policy",
             "guardians_guardianreport")  # fmt: skip
    for name in names:
        page = client.get(reverse(f"admin:{name}_changelist"))
        assert page.status_code == 200 and page.context["cl"].result_count == 0, name
    assert client.get(reverse("admin:agents_task_change", args=[finished_task.pk])).status_code == 302


def test_an_owner_who_is_not_staff_signs_in_and_creates_a_project(client, stranger):
    assert client.get(reverse("home")).url.startswith(reverse("login"))
    response = client.post(reverse("login"), {"username": "stranger", "password": "pw"})
    assert response.status_code == 302 and response.url == reverse("home")
    response = client.post(reverse("home"), {"name": "mine", "default_mode": "competitive"})
    project = Project.objects.get(owner=stranger, name="mine", default_mode="competitive")
    assert response.url == project.get_absolute_url()
    page = client.post(reverse("home"), {"name": "mine", "default_mode": "single"}).content.decode()
    assert "already have a project with this name" in page
    assert Project.objects.filter(owner=stranger).count() == 1


def test_staff_see_only_their_projects_in_filters_and_cannot_move_a_memory(client, django_user_model, stranger):
    """A project filter must not list another owner's project names, and a memory entry's owner,
    project and kind are fixed: moving a memory would hand it to another owner's requests."""
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["agents", "memory"]))
    mine = Project.objects.create(owner=staff, name="staff-own-project")
    Project.objects.create(owner=stranger, name="stranger-secret-project")
    Task.objects.create(project=mine, request="r", entry_point="f")
    entry = MemoryEntry.objects.create(owner=staff, project=mine, kind=MemoryEntry.Kind.LESSON, content="a lesson")
    client.force_login(staff)
    for name in ("agents_task", "agents_deployment", "memory_memoryentry"):
        page = client.get(reverse(f"admin:{name}_changelist")).content.decode()
        assert "stranger-secret-project" not in page, name
    assert "staff-own-project" in client.get(reverse("admin:agents_task_changelist")).content.decode()
    change = reverse("admin:memory_memoryentry_change", args=[entry.pk])
    form = client.get(change).content.decode()
    assert 'name="content"' in form
    assert 'name="owner"' not in form and 'name="project"' not in form and 'name="kind"' not in form
    client.post(change, {"content": "edited", "source": "", "metadata": "{}", "owner": stranger.pk, "kind": "solution"})
    entry.refresh_from_db()
    assert (entry.owner, entry.kind, entry.content) == (staff, MemoryEntry.Kind.LESSON, "edited")
