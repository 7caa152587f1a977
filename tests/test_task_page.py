"""The owner's task page: verdict test outcomes, highlighted code and diffs, the timeline, and the
buttons (cancel, retry, roll back to this task's code); another owner reaches none of it."""

import pytest
from django.urls import reverse

from agents.models import Deployment, Task
from agents.services import submit_task
from tests.test_workflow_branches import BAD, GOOD, REQUEST, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_round_shows_its_tests_code_diff_and_the_timeline(client, eager, llm, project, user):
    llm.script("generate", BAD, GOOD)
    llm.script("decide", {"decision": "repair", "reason": "fix it"}, {"decision": "accept", "reason": "ok"})
    task = run(project, max_rounds=2)
    assert task.status == Task.Status.ACCEPTED, task.message
    client.force_login(user)
    page = client.get(task.get_absolute_url()).content.decode()
    assert "expected versus got" in page and "outcome-failed" in page and "returned nothing, expected" in page
    assert 'class="code"' in page and "Diff against round 1, which it repaired" in page
    assert "generator: generate" in page and "sandbox: verdict" in page and "policy v1" in page
    assert "This task&#x27;s code is deployed now" in page or "This task's code is deployed now" in page


def test_cancel_stops_a_task_and_only_once(client, project, user):
    task = Task.objects.create(project=project, request=REQUEST, status=Task.Status.RUNNING)
    client.force_login(user)
    client.post(reverse("task_cancel", args=[task.pk]))
    task.refresh_from_db()
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "cancelled") and "Cancelled by owner" in task.message
    page = client.post(reverse("task_cancel", args=[task.pk]), follow=True).content.decode()
    assert "already ended" in page


def test_retry_submits_the_same_or_an_edited_request_in_another_mode(client, eager, llm, project, user):
    llm.script("generate", GOOD)
    first = run(project, mode="single")
    client.force_login(user)
    response = client.post(reverse("task_retry", args=[first.pk]), {"request": first.request, "mode": "pipeline"})
    again = Task.objects.exclude(pk=first.pk).get()
    assert response.url == again.get_absolute_url() and again.mode == "pipeline"
    assert again.request == first.request.strip()
    page = client.post(reverse("task_retry", args=[first.pk]), {"request": "  ", "mode": ""}, follow=True)
    assert "request: This field is required." in page.content.decode() and Task.objects.count() == 2


def test_roll_back_to_this_tasks_code(client, eager, llm, project, user, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2
    llm.script("generate", GOOD)
    first = run(project, mode="single")
    second = submit_task(project, REQUEST + "\nAlso trim.\n", mode="single")
    client.force_login(user)
    assert "roll back to" in client.get(first.get_absolute_url()).content.decode()
    client.post(reverse("task_rollback", args=[first.pk]))
    now = Deployment.objects.filter(project=project).first()
    assert now.kind == "rollback" and now.checkpoint.task == first
    page = client.post(reverse("task_rollback", args=[first.pk]), follow=True).content.decode()
    assert "already deployed" in page
    failed = Task.objects.create(project=project, request="r", status=Task.Status.FAILED)
    page = client.post(reverse("task_rollback", args=[failed.pk]), follow=True).content.decode()
    assert "never deployed" in page and second.pk


def test_another_owner_reaches_no_task_page_or_button(client, eager, llm, project, stranger):
    llm.script("generate", GOOD)
    task = run(project, mode="single")
    client.force_login(stranger)
    for name in ("task", "task_cancel", "task_retry", "task_rollback", "task_review"):
        method = client.get if name == "task" else client.post
        assert method(reverse(name, args=[task.pk])).status_code == 404, name
    assert Task.objects.count() == 1 and Deployment.objects.count() == 1
