"""The owner's project page: settings (budgets as the project's policy line), deployments with the
current one marked and rollback, open alerts, memory search, upload and forget, charts; another
owner reaches none of it, and bad input gets a clear error."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents import policy
from agents.models import Deployment, Project
from agents.services import submit_task
from guardians.models import Alert
from memory import embeddings
from memory.models import MemoryEntry
from tests.test_workflow_branches import GOOD, REQUEST, run

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = {"default_mode": "single", "use_memory": "on", "hold_below": "0.5", "budget_tokens": "5000",
            "budget_seconds": "0"}  # fmt: skip


def test_settings_change_the_project_and_its_budgets_become_its_own_policy_line(client, eager, llm, project, user):
    client.force_login(user)
    response = client.post(reverse("project_settings", args=[project.pk]), SETTINGS)
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.default_mode, project.hold_below) == ("single", 0.5)
    own = policy.live(project)
    assert own.project == project and policy.values_of(own).budget_tokens == 5000
    llm.script("generate", GOOD)
    task = run(project)
    assert task.mode == "single" and task.budget_tokens == 5000 and task.policy == own
    client.post(reverse("project_settings", args=[project.pk]), SETTINGS)
    assert project.policies.count() == 1  # unchanged budgets write no new version


def test_a_negative_budget_or_a_bad_threshold_is_refused_and_nothing_changes(client, project, user):
    client.force_login(user)
    for field, value in (("budget_tokens", "-5"), ("hold_below", "2")):
        response = client.post(reverse("project_settings", args=[project.pk]), {**SETTINGS, field: value})
        assert response.status_code == 400 and "errorlist" in response.content.decode()
    project.refresh_from_db()
    assert project.default_mode == "pipeline" and not project.policies.exists()


def test_deployments_charts_alerts_and_rollback(client, eager, llm, project, user, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2
    llm.script("generate", GOOD)
    first = run(project, mode="single")
    submit_task(project, REQUEST + "\nAlso trim.\n", mode="single")
    Alert.objects.create(task=first, fingerprint="f", failure_class="timeout", message="the model timed out")
    client.force_login(user)
    page = client.get(project.get_absolute_url()).content.decode()
    assert page.count("Roll back to this") == 1 and "deployed now" in page and "the model timed out" in page
    assert page.count("<svg") == 3 and "Accepted share of finished tasks" in page
    older = Deployment.objects.filter(project=project).last()
    client.post(reverse("project_rollback", args=[project.pk, older.pk]))
    assert Deployment.objects.filter(project=project).first().kind == "rollback"


def test_memory_upload_search_and_forget(client, project, user):
    client.force_login(user)
    document = SimpleUploadedFile("style.md", b"Our functions are named in snake_case and documented with examples.")
    client.post(reverse("project_memory", args=[project.pk]), {"document": document})
    entry = MemoryEntry.objects.get(owner=user)
    embeddings.embed_pending()
    page = client.get(project.get_absolute_url() + "?q=naming functions").content.decode()
    assert "snake_case" in page and "Forget" in page
    client.post(reverse("memory_forget", args=[project.pk, entry.pk]))
    assert not MemoryEntry.objects.filter(pk=entry.pk).exists()
    empty = SimpleUploadedFile("empty.md", b"")
    response = client.post(reverse("project_memory", args=[project.pk]), {"document": empty})
    assert response.status_code == 400 and not MemoryEntry.objects.exists()


def test_another_owner_reaches_nothing_of_the_project(client, project, user, stranger):
    mine = MemoryEntry.objects.create(owner=user, project=project, kind="document", content="secret plans")
    theirs = Project.objects.create(owner=stranger, name="theirs")
    client.force_login(stranger)
    assert client.get(project.get_absolute_url()).status_code == 404
    for name, args in (("project_settings", [project.pk]), ("project_memory", [project.pk]),
                       ("memory_forget", [project.pk, mine.pk]), ("memory_forget", [theirs.pk, mine.pk])):  # fmt: skip
        assert client.post(reverse(name, args=args), SETTINGS).status_code == 404, name
    assert MemoryEntry.objects.filter(pk=mine.pk).exists()
    page = client.get(theirs.get_absolute_url() + "?q=secret plans").content.decode()
    assert "Nothing in your memory matches" in page and "Forget" not in page


def test_download_is_the_deployed_tree_as_git_holds_it(client, eager, llm, project, user, settings):
    import io
    import zipfile

    from agents import workspace

    client.force_login(user)
    assert client.get(reverse("project_download", args=[project.pk])).status_code == 404  # nothing deployed yet
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2
    llm.script("generate", GOOD)
    run(project, mode="single")
    llm.reset()
    llm.script("generate", "```python\n# helpers/text.py\ndef strip(t):\n    return t.strip()\n```\n" + GOOD)
    submit_task(project, REQUEST + "\nAlso trim.\n", mode="single")
    response = client.get(reverse("project_download", args=[project.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    files = {name.split("/", 1)[1]: archive.read(name).decode() for name in archive.namelist()}
    assert files == workspace.main_files(project.workspace) and "solution.py" in files
    first = Deployment.objects.filter(project=project).last()
    client.post(reverse("project_rollback", args=[project.pk, first.pk]))
    rolled = zipfile.ZipFile(io.BytesIO(client.get(reverse("project_download", args=[project.pk])).content))
    assert [name.split("/", 1)[1] for name in rolled.namelist()] == ["solution.py"]
    assert client.get(reverse("project_download", args=[project.pk]) + "?deployment=x").status_code == 404


def test_a_rollback_to_another_projects_deployment_is_404(client, eager, llm, project, user):
    llm.script("generate", GOOD)
    run(project, mode="single")
    other = Project.objects.create(owner=user, name="other")
    theirs = Deployment.objects.get(project=project)
    client.force_login(user)
    assert client.post(reverse("project_rollback", args=[other.pk, theirs.pk])).status_code == 404
    assert Deployment.objects.count() == 1
