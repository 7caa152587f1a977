"""/healthz: 200 when every part answers, 503 naming the parts that do not, never an address."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from guardians.models import ScheduledRun
from tests.helpers import point_model_at

pytestmark = pytest.mark.django_db(transaction=True)


def beat_ran(seconds_ago=0):
    when = timezone.now() - timedelta(seconds=seconds_ago)
    run = ScheduledRun.objects.create(job="reap_stalled", due=when)
    ScheduledRun.objects.filter(pk=run.pk).update(claimed=when)


def test_every_part_up_is_200_without_signing_in(client, worker):
    beat_ran()
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200 and body["ok"] and body["failing"] == [], body
    assert {
        "database",
        "broker",
        "embedder",
        "model small",
        "model large",
        "queue llm",
        "queue sandbox",
        "beat",
    } <= set(body["parts"])


def test_no_worker_no_beat_and_a_dead_model_are_503_and_named(client, settings):
    point_model_at(settings, "large", ["http://user:secret@127.0.0.1:9"])
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 503 and not body["ok"]
    assert {"model large", "queue llm", "queue default", "beat"} <= set(body["failing"]), body
    assert body["parts"]["model small"] == "ok" and body["parts"]["database"] == "ok"
    assert body["parts"]["beat"] == "has not run yet"
    assert "127.0.0.1" not in response.content.decode() and "secret" not in response.content.decode()


def test_a_beat_that_stopped_is_named_with_how_long_ago(client, settings):
    beat_ran(seconds_ago=10 * settings.GRYPHGEN_REAP_SECONDS)
    body = client.get(reverse("healthz")).json()
    assert body["parts"]["beat"].startswith("last ran ") and "beat" in body["failing"]


def test_healthz_answers_only_get(client):
    assert client.post(reverse("healthz")).status_code == 405


def test_metrics_count_tasks_calls_tokens_and_sandbox_runs_for_staff_and_the_scraper(
    client, eager, llm, project, user, stranger, settings
):
    from tests.test_workflow_branches import GOOD, run

    llm.script("generate", GOOD)
    run(project, mode="single")
    assert client.get(reverse("metrics")).status_code == 403  # not signed in
    client.force_login(stranger)
    assert client.get(reverse("metrics")).status_code == 403  # not staff
    client.force_login(user)
    text = client.get(reverse("metrics")).content.decode()
    assert 'gryphgen_tasks{mode="single",status="accepted"} 1.0' in text
    assert 'gryphgen_llm_call_seconds_count{role="generator"} 1.0' in text and 'le="+Inf"' in text
    assert "gryphgen_llm_tokens_total{" in text and 'gryphgen_sandbox_runs_total{limit="none",purpose="verdict"' in text
    assert 'gryphgen_queue_depth{queue="llm"}' in text and project.name not in text
    client.logout()
    settings.GRYPHGEN_METRICS_TOKEN = "scrape-me"
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_the_staff_dashboard_draws_the_meta_guardians_figures(client, eager, llm, project, user, stranger):
    from tests.test_workflow_branches import GOOD, run

    llm.script("generate", GOOD)
    run(project, mode="single")
    client.force_login(stranger)
    assert client.get(reverse("dashboard")).status_code == 302  # to the admin's sign-in: staff only
    client.force_login(user)
    page = client.get(reverse("dashboard")).content.decode()
    assert page.count("<svg") >= 4 and "Accepted share by mode" in page and "single (1)" in page
    assert "global v1 (live)" in page and "Model call latency by role, p95" in page


def test_a_live_policy_naming_a_model_no_longer_served_is_named_not_a_server_error(client, settings):
    from agents import policy

    policy.live()
    settings.GRYPHGEN_MODELS = {"small": settings.GRYPHGEN_MODELS["small"]}  # `large` was removed from the settings
    response = client.get(reverse("healthz"))
    assert response.status_code == 503 and "large" in response.json()["parts"]["policy"]
