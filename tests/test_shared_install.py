"""Defaults for an install several people share: sign-in throttling, per-owner quotas, bounded
rounds, permissions on the admin's actions, audit rows that stay, no credentials in records."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from agents.llm import LLMClient, LLMUnavailable
from agents.models import AgentCall, Deployment, Project, Task
from agents.services import submit_task
from guardians.models import Alert, DeadLetter, GuardianReport
from tests.test_workflow_branches import REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


def test_repeated_failed_sign_ins_lock_the_username_out(client, django_user_model, settings):
    django_user_model.objects.create_user("victim", password="the-right-one")
    login = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(login, {"username": "victim", "password": "guess"})
        assert response.status_code == 200  # the form again, with its error
    assert client.post(login, {"username": "victim", "password": "guess"}).status_code == 429  # the last try
    response = client.post(login, {"username": "victim", "password": "the-right-one"})
    assert response.status_code == 429  # locked out, even with the right password
    assert "_auth_user_id" not in client.session


def test_an_owner_cannot_queue_more_than_the_quota(project, settings):
    settings.GRYPHGEN_MAX_TASKS_IN_FLIGHT = 2
    for _ in range(2):
        Task.objects.create(project=project, request=REQUEST, entry_point="slugify")  # queued
    with pytest.raises(ValidationError, match="2 tasks queued, running or held"):
        submit_task(project, REQUEST)
    assert Task.objects.count() == 2


def test_rounds_are_bounded_at_the_service_and_in_the_admin(client, user, project):
    with pytest.raises(ValidationError, match="the most a task may run is 10"):
        submit_task(project, REQUEST, max_rounds=1000)
    client.force_login(user)
    response = client.post(
        reverse("admin:agents_task_add"),
        {"project": project.pk, "request": REQUEST, "acceptance_tests": "", "mode": "pipeline", "max_rounds": 500,
         "budget_tokens": 0, "budget_seconds": 0},
    )  # fmt: skip
    assert response.status_code == 200 and "less than or equal to 10" in response.content.decode()
    assert not Task.objects.exists()


def test_admin_actions_need_their_permissions_and_audit_rows_cannot_be_deleted(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    project = Project.objects.create(owner=staff, name="p")
    task = Task.objects.create(project=project, request=REQUEST, status=Task.Status.ERROR)
    Alert.objects.create(task=task, failure_class="stalled", fingerprint="f", message="m")
    DeadLetter.objects.create(task=task, step="agents.tasks.generate_step", failure_class="stalled", error="e")
    client.force_login(staff)
    pages = {
        "agents_deployment": "roll_back",
        "guardians_alert": "resolve",
        "guardians_deadletter": "rerun",
    }
    for name, action in pages.items():
        page = client.get(reverse(f"admin:{name}_changelist")).content.decode()
        assert f'value="{action}"' not in page, name  # a viewer is not offered the action
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_alert", "change_deadletter"]))
    staff = django_user_model.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert 'value="resolve"' in client.get(reverse("admin:guardians_alert_changelist")).content.decode()
    superuser = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    for model in (Deployment, Alert, GuardianReport):
        meta = model._meta
        page = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")).content.decode()
        assert 'value="delete_selected"' not in page, meta.model_name


def test_a_password_in_an_endpoint_url_never_reaches_a_call_record(project):
    task = Task.objects.create(project=project, request=REQUEST)
    with pytest.raises(LLMUnavailable) as caught:
        LLMClient(endpoints=["http://user:s3cret-token@127.0.0.1:9"]).chat(
            "generator", [{"role": "user", "content": "x"}], task=task
        )
    call = AgentCall.objects.get(task=task)
    assert "s3cret-token" not in call.endpoint + call.error and ":***@" in call.endpoint
    assert "s3cret-token" not in str(caught.value)
