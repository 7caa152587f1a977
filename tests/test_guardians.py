"""Guardians as behaviour: the safety monitor blocks, the watcher stops loops, the diagnostician
classifies, failures are parked and re-run, alerts rate-limit, the optimizer proposes and the
meta-guardian summarises (scripted LLM server, eager canvas)."""

from datetime import UTC

import pytest
from django.test import Client

from agents import policy, safety_review
from agents.llm import LLMUnavailable
from agents.models import Checkpoint, Policy, SandboxRun, StopReason, Task
from agents.services import submit_task
from guardians import diagnostician, meta, optimizer, recovery, safety, schedule
from guardians.models import Alert, DeadLetter, FailureClass, GuardianReport, Proposal, ScheduledRun
from memory.models import MemoryEntry
from tests.helpers import point_model_at
from tests.test_workflow_branches import BAD, GOOD, REQUEST, run

pytestmark = pytest.mark.django_db(transaction=True)


# --- safety monitor (its review rules are tested in tests/fast/test_safety_review.py) -------------


@pytest.mark.parametrize(
    "target, value, ok",
    [
        ("temperatures.generator", 0.4, True),
        ("temperatures.generator", 3.0, False),
        ("max_tokens.monitor", 100000, False),
        ("max_rounds", 4, True),
        ("max_rounds", 11, False),
        ("sandbox.memory_mb", 4096, False),
        ("mode", "debate", True),
        ("mode", "consensus_one", True),
        ("mode", "yolo", False),
        ("roster.generator", "large", True),
        ("roster.generator", "gpt-9", False),
        ("generator_prompt", "Be brief. sk-" + "x" * 30, False),
        ("temperatures.unknown", 1, False),
        ("llm.timeout", 300, True),
        ("llm.timeout", 5, False),
    ],
)
def test_safety_monitor_reviews_proposals(target, value, ok):
    assert (safety.review_proposal(target, value) == "") is ok


def test_blocked_code_never_runs_and_the_repair_hears_why(eager, llm, project):
    llm.script("generate", "```python\nimport subprocess\n\n\ndef slugify(text):\n    return text\n```", GOOD)
    llm.script("decide", {"decision": "repair", "reason": "blocked"}, {"decision": "accept", "reason": "ok"})
    task = run(project)
    assert task.status == Task.Status.ACCEPTED, task.message
    first = task.checkpoints.get(round=1)
    run_row = SandboxRun.objects.get(checkpoint=first)
    assert (run_row.status, run_row.exit_code, run_row.duration_ms) == ("refused", None, 0)
    assert safety_review.BLOCKED_MARK in run_row.stderr and "imports subprocess" in run_row.stderr
    report = GuardianReport.objects.get(checkpoint=first, guardian="safety")
    assert (report.severity, report.failure_class) == ("critical", "safety_blocked")
    assert GuardianReport.objects.get(checkpoint=first, guardian="diagnostician").failure_class == "safety_blocked"
    repair_prompt = [r for r in llm.requests if r["purpose"] == "generate"][1]["body"]["messages"][-1]["content"]
    assert "imports subprocess, which runs other programs" in repair_prompt
    assert GuardianReport.objects.get(checkpoint=task.checkpoints.get(round=2), guardian="safety").severity == "info"


# --- watcher: scores and the loop guard --------------------------------------------------------------


def test_watcher_scores_each_round_and_the_loop_guard_stops_repeats(eager, llm, project, settings):
    llm.script("generate", BAD)  # the same wrong code every round
    llm.script("decide", {"decision": "repair", "reason": "try again"})
    task = run(project, max_rounds=5)
    assert task.status == Task.Status.FAILED
    assert task.stop_reason == StopReason.LOOP, task.message
    assert task.checkpoints.count() == 3  # round 3 repeated rounds 1 and 2: no round 4 or 5
    reports = GuardianReport.objects.filter(task=task, guardian="watcher").order_by("checkpoint__round")
    assert [r.findings["repeats_code_of_rounds"] for r in reports] == [[], [1], [1, 2]]
    assert all(0 <= r.findings["score"] < 0.7 for r in reports) and reports[2].severity == "warning"
    # the watcher's finding changed what happened next: round 3 was generated as a variant
    temperatures = [r["body"]["temperature"] for r in llm.requests if r["purpose"] == "generate"]
    assert temperatures[:2] == [settings.GRYPHGEN_ROLES["generator"]["temperature"]] * 2
    assert temperatures[2] == settings.GRYPHGEN_VARIANT_TEMPERATURE


# --- diagnostician ---------------------------------------------------------------------------------


def test_diagnostician_classifies_rounds_from_their_evidence(project):
    task = Task.objects.create(project=project, request="r")

    def round_of(n, **fields):
        return Checkpoint.objects.create(task=task, round=n, **fields)

    def limit_run(cp, limit):
        return SandboxRun(task=task, checkpoint=cp, status="limit", limit=limit)

    syntax = round_of(1, generation_error="solution.py is not valid Python: line 2: invalid syntax")
    assert diagnostician.classify_round(syntax).failure_class == FailureClass.SYNTAX_ERROR
    assert diagnostician.classify_round(round_of(2, generation_error="no ```python code block")).failure_class == (
        FailureClass.MODEL_FORMAT
    )
    slow = round_of(3)
    assert diagnostician.classify_round(slow, limit_run(slow, "wall_clock")).failure_class == FailureClass.TIMEOUT
    assert diagnostician.classify_round(slow, limit_run(slow, "memory")).failure_class == FailureClass.RESOURCE_LIMIT
    wrong = round_of(4, test_results=[{"name": "t1", "outcome": "failed", "message": "assert 2 == 3"}])
    diagnosis = diagnostician.classify_round(wrong)
    assert diagnosis.failure_class == FailureClass.WRONG_ANSWER and "assert 2 == 3" in diagnosis.evidence
    bad_import = round_of(5, test_results=[{"name": "t", "outcome": "failed", "message": "E   IndentationError: x"}])
    assert diagnostician.classify_round(bad_import).failure_class == FailureClass.SYNTAX_ERROR


@pytest.mark.parametrize(
    "reply, expected",
    [
        ({"failure_class": "timeout", "evidence": "loops forever"}, "timeout"),
        ("this is not a report", "unknown"),
        ({"failure_class": "cosmic_rays", "evidence": "?"}, "unknown"),
    ],
)
def test_diagnostician_asks_the_model_only_when_its_rules_cannot_place_a_failure(llm, project, reply, expected):
    llm.script("diagnose", reply)
    task = Task.objects.create(project=project, request="r")
    mystery = Checkpoint.objects.create(task=task, round=1, tests_total=1)  # failed, yet no test says why
    report = diagnostician.report_round(mystery.pk)
    assert report.failure_class == expected and llm.purposes() == ["diagnose"]
    if expected == "unknown":
        assert "unusable" in report.findings["evidence"]
    call = task.calls.get()
    assert (call.role, call.purpose, call.checkpoint_id) == ("guardian", "diagnose", mystery.pk)


# --- failure recovery: retry, dead letter, alert, re-run, lesson ------------------------------------


def run_failing(project):
    """Eager chains re-raise a failed step's error to the caller (a worker does not); the
    failure path has run by then."""
    with pytest.raises(LLMUnavailable):
        submit_task(project, REQUEST)
    return Task.objects.filter(project=project).first()


def test_a_step_that_keeps_failing_is_parked_with_its_history_and_an_alert(eager, llm, project, settings, client):
    point_model_at(settings, "small", ["http://127.0.0.1:9"])  # nothing listens on the discard port
    task = run_failing(project)
    assert task.status == Task.Status.ERROR and task.stop_reason == StopReason.ERROR
    assert task.message.startswith("Needs attention: agents.tasks.generate_step failed (server unavailable)")
    dead = DeadLetter.objects.get(task=task)
    assert (dead.step, dead.args, dead.failure_class) == (
        "agents.tasks.generate_step",
        [task.pk, 1, 0],
        "server_unavailable",
    )
    assert [h["attempt"] for h in dead.history] == [1, 2]  # the first try and one retry (GRYPHGEN_LLM_RETRIES=1)
    assert all(h["transient"] and "127.0.0.1:9" in h["evidence"] for h in dead.history)
    alert = Alert.objects.get(task=task)
    assert alert.failure_class == "server_unavailable" and f"Task #{task.pk}" in alert.message
    assert not task.checkpoints.exists()
    client.force_login(project.owner)
    page = client.get(task.get_absolute_url()).content.decode()
    assert "Needs attention" in page and f"dead letter #{dead.pk}" in page
    Task.objects.filter(pk=task.pk).update(status=Task.Status.FAILED)
    with pytest.raises(recovery.RerunRefused, match="only a task in error"):
        recovery.rerun(dead.pk)


def test_a_failover_to_the_backup_endpoint_is_remembered_as_a_lesson(eager, llm, project, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2  # (policy v1) the same request again goes to the generator, not memory
    for model in ("small", "large"):  # the roster's roles span both models
        point_model_at(settings, model, ["http://127.0.0.1:9", *settings.GRYPHGEN_MODELS[model]["urls"]])
    llm.script("generate", GOOD)
    task = run(project)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.calls.filter(endpoint="http://127.0.0.1:9").exclude(error="").count() == 4  # each call tried it first
    lesson = MemoryEntry.objects.get(kind="lesson", owner=project.owner)
    assert lesson.metadata["failure_class"] == "server_unavailable" and lesson.metadata["count"] == 4
    assert "failover to the backup endpoint" in lesson.metadata["resolution"]
    # the next failure of the same kind is recognised
    point_model_at(settings, "small", ["http://127.0.0.1:9"])
    failed = run_failing(project)
    assert failed.status == Task.Status.ERROR
    report = GuardianReport.objects.filter(task=failed, guardian="diagnostician").first()
    assert report.findings["known"]["seen"] == 4 and "failover" in report.findings["known"]["resolution"]
    assert "Seen before (4×), resolved by failover" in Alert.objects.get(task=failed).message


def test_an_alert_storm_is_one_counted_alert(project):
    task = Task.objects.create(project=project, request="r")
    key = recovery.fingerprint(task, "server_unavailable", "generate")
    for i in range(300):
        recovery.raise_alert(task, "server_unavailable", f"failure {i}", key)
    alert = Alert.objects.get()
    assert (alert.count, alert.message) == (300, "failure 299")
    recovery.raise_alert(task, "not-a-class-we-know", "odd", "other")  # an unknown class is still recorded
    assert Alert.objects.count() == 2


def test_a_stalled_task_is_stopped_with_an_alert(project, settings):
    from datetime import timedelta

    from django.utils import timezone

    task = Task.objects.create(project=project, request="r", status="running", started=timezone.now())
    assert recovery.reap_stalled() == []
    later = timezone.now() + timedelta(seconds=settings.GRYPHGEN_STALL_SECONDS + 1)
    assert recovery.reap_stalled(later) == [task.pk]
    task.refresh_from_db()
    assert task.status == Task.Status.ERROR and "No progress" in task.message
    assert Alert.objects.get(task=task).failure_class == "stalled"


# --- optimizer and meta guardians, scheduled once -----------------------------------------------------


def test_optimizer_proposes_from_evidence_and_never_applies(eager, llm, project, settings):
    llm.script("generate", BAD)
    llm.script("decide", {"decision": "repair", "reason": "again"})
    for _ in range(4):
        run(project, max_rounds=3)  # 12 rounds, 8 of them repeating earlier code
    live = policy.live()
    before = policy.values_of(live).temperatures["generator"]
    created = optimizer.propose()
    proposal = Proposal.objects.get(target="temperatures.generator")
    assert proposal in created and proposal.status == "proposed" and proposal.current == before
    assert proposal.proposed == round(before + 0.2, 2) and proposal.evidence["repeated_code"] == 8
    assert policy.live() == live and Policy.objects.count() == 1  # proposed, not applied
    assert optimizer.propose() == []  # one open proposal per target


def test_meta_guardian_view_and_scheduled_runs_fire_once_per_due_time(eager, llm, project):
    llm.script("generate", GOOD)
    run(project)
    report = meta.review()
    assert report.findings["modes"]["pipeline"] == {"tasks": 1, "accepted": 1, "pass_rate": 1.0}
    assert report.findings["roles"]["generator"]["calls"] == 1
    assert report.findings["roles"]["generator"]["latency_ms_p95"] is not None
    from datetime import datetime

    t = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
    assert schedule.claim("job", 60, t) is not None
    assert schedule.claim("job", 60, t.replace(second=59)) is None  # the same due time
    assert schedule.claim("job", 60, t.replace(minute=1)) is not None
    assert ScheduledRun.objects.get(job="job", due=t.replace(second=0)).duplicates == 1


def test_guardian_admin_pages_render(eager, llm, project):
    llm.script("generate", GOOD)
    run(project)
    meta.review()
    Proposal.objects.create(target="max_rounds", current=3, proposed=2, rationale="r")
    client = Client()
    client.force_login(project.owner)
    for name in ("guardianreport", "alert", "deadletter", "proposal", "scheduledrun"):
        assert client.get(f"/admin/guardians/{name}/").status_code == 200
    report = GuardianReport.objects.filter(guardian="meta").get()
    page = client.get(f"/admin/guardians/guardianreport/{report.pk}/change/").content.decode()
    assert "latency_ms_p95" in page


def test_owners_see_only_their_own_alerts(project, stranger):
    from django.contrib.auth.models import Permission

    from agents.models import Project

    mine = Task.objects.create(project=project, request="r")
    theirs = Task.objects.create(project=Project.objects.create(owner=stranger, name="s"), request="r")
    recovery.raise_alert(mine, "timeout", "owner's detail", recovery.fingerprint(mine, "timeout", "x"))
    recovery.raise_alert(theirs, "timeout", "stranger's detail", recovery.fingerprint(theirs, "timeout", "x"))
    assert Alert.objects.count() == 2  # the same cause and step, but two owners: two alerts
    stranger.is_staff = True
    stranger.save()
    stranger.user_permissions.add(Permission.objects.get(codename="view_alert"))
    client = Client()
    client.force_login(stranger)
    page = client.get("/admin/guardians/alert/").content.decode()
    assert "stranger&#x27;s detail" in page and "owner&#x27;s detail" not in page


def test_submit_inside_a_rolled_back_transaction_never_runs(eager, llm, project):
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            submit_task(project, REQUEST)
            raise RuntimeError("the surrounding request failed")
    assert not Task.objects.exists() and llm.requests == []
