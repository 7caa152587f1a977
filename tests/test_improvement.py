"""The improvement cycle on the scripted server: a true winner is adopted, a loser and a tie at
higher cost are not, a killed cycle resumes without repeating a trial, owners' tasks go first, an
adopted version that regresses live is rolled back, and bad candidates never run."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agents import policy
from agents.models import Deployment, Mode, Project, Task
from guardians.models import Alert, Proposal
from improvement import cycle as cycles
from improvement import tasks as cycle_tasks
from improvement.models import Cycle, Trial
from memory.models import MemoryEntry
from tests.test_workflow_branches import BAD, GOOD, REQUEST, run

pytestmark = pytest.mark.django_db(transaction=True)

LARGE = "qwen2.5-coder-1.5b-instruct"


@pytest.fixture
def history(eager, llm, project, settings):
    """Four accepted owner tasks (the problems a cycle tests on) and a live policy in `mode`."""
    settings.GRYPHGEN_CYCLE_PROBLEMS = 4
    settings.GRYPHGEN_CYCLE_ARMS = 1
    llm.script("generate", GOOD)
    first = run(project, mode="single")
    assert first.status == Task.Status.ACCEPTED, first.message
    for _ in range(3):
        Task.objects.create(
            project=project, request=REQUEST, status=Task.Status.ACCEPTED, verdict_tests=first.verdict_tests,
            finished=timezone.now(), policy=first.policy,
        )  # fmt: skip
    llm.reset()
    return first


def live_mode(mode):
    values = policy.changed(policy.values_of(policy.live()), "mode", mode)
    return policy.publish(values.model_dump(), project=None, parent=policy.live(), note=f"{mode} by default")


def propose(target, value):
    return Proposal.objects.create(target=target, current=None, proposed=value, rationale="test")


def run_cycle():
    cycle = cycles.begin()
    for _ in range(50):
        if cycles.advance(cycle.pk):
            break
    cycles.decide(cycle)
    cycle.refresh_from_db()
    return cycle


def test_a_candidate_that_truly_wins_is_adopted_and_staging_never_deploys_or_remembers(history, llm):
    base = live_mode("single")
    llm.script("generate", BAD)
    llm.script(f"generate@{LARGE}", GOOD)
    proposal = propose("roster.generator", "large")
    memories = MemoryEntry.objects.count()
    cycle = run_cycle()
    assert cycle.status == Cycle.Status.ADOPTED, cycle.decision
    assert policy.live() == cycle.adopted != base and policy.values_of(cycle.adopted).roster["generator"] == "large"
    assert cycle.canary == Cycle.Canary.WATCHING and "better beyond the interval" in cycle.decision
    live, candidate = cycle.table
    assert (live["solved"], candidate["solved"], candidate["difference"]) == (0, 4, 1.0)
    assert candidate["ci95"][0] > 0 and candidate["verdict"] == "better"
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.ADOPTED
    staging = Project.objects.get(staging=True)
    assert staging.tasks.count() == 8 and not Deployment.objects.filter(project=staging).exists()
    assert {t.policy for t in staging.tasks.all()} == {base, cycle.adopted}
    assert MemoryEntry.objects.count() == memories  # staging tasks wrote nothing to memory


def test_a_loser_and_a_tie_at_higher_cost_are_rejected_and_the_live_policy_stays(history, llm, settings):
    settings.GRYPHGEN_CYCLE_ARMS = 2
    base = live_mode("single")
    llm.script("generate", GOOD)
    llm.script(f"generate@{LARGE}", BAD)
    loser = propose("roster.generator", "large")
    tie = propose("mode", "pipeline")  # as right, with analyzer, monitor and optimizer calls on top
    cycle = run_cycle()
    assert cycle.status == Cycle.Status.KEPT and policy.live() == base, cycle.decision
    rows = {row["arm"].split(":")[0]: row for row in cycle.table}
    assert rows[f"proposal #{loser.pk}"]["difference"] == -1.0 and rows[f"proposal #{tie.pk}"]["difference"] == 0
    assert rows[f"proposal #{tie.pk}"]["tokens"] > rows["live"]["tokens"] and not rows[f"proposal #{tie.pk}"]["verdict"]
    assert set(Proposal.objects.values_list("status", flat=True)) == {Proposal.Status.REJECTED}
    assert propose("roster.generator", "large").status == Proposal.Status.PROPOSED  # the target is free again


def test_as_good_at_clearly_lower_cost_is_adopted(history, llm):
    live_mode("pipeline")
    llm.script("generate", GOOD)
    llm.seconds_per_call = 0.3  # pipeline asks four roles per round, single one
    propose("mode", "single")
    cycle = run_cycle()
    assert cycle.status == Cycle.Status.ADOPTED, cycle.decision
    live, candidate = cycle.table
    assert candidate["difference"] == 0 and candidate["verdict"] == "cheaper", cycle.table
    assert candidate["seconds"] < live["seconds"] and policy.values_of(policy.live()).mode == "single"


def test_a_killed_cycle_resumes_without_repeating_finished_trials(history, llm):
    live_mode("single")
    llm.script("generate", GOOD)
    propose("temperatures.generator", 0.5)
    cycle = cycles.begin()
    for _ in range(2):  # starts a trial, scores it and starts the next; then the worker "dies"
        cycles.advance(cycle.pk)
    started = dict(Trial.objects.exclude(task=None).values_list("pk", "task_id"))
    assert len(started) == 2 and Cycle.objects.get(pk=cycle.pk).status == Cycle.Status.RUNNING
    cycle_tasks.start_cycle.apply()  # beat (or the admin) picks the running cycle up again
    cycle.refresh_from_db()
    assert cycle.status in (Cycle.Status.KEPT, Cycle.Status.ADOPTED) and cycle.loop == 1
    assert {pk: t for pk, t in Trial.objects.values_list("pk", "task_id") if pk in started} == started
    assert Task.objects.filter(project__staging=True).count() == Trial.objects.count() == 8
    assert cycle_tasks.run_trials.apply(args=([cycle.pk, 0],)).get() is None  # an older canvas stops
    assert cycle_tasks.decide_cycle.apply(args=(cycle.pk,)).get() == cycle.decision  # deciding twice changes nothing


def test_a_trial_judged_without_its_task_is_not_started_again(history, llm):
    """A judged trial whose staging task is gone (deleted, or a cycle rebuilt from a record, as
    bench/improvement.py --resume does) keeps its outcome: only trials without one start."""
    live_mode("single")
    llm.script("generate", GOOD)
    propose("temperatures.generator", 0.5)
    cycle = cycles.begin()
    judged = Trial.objects.filter(arm__cycle=cycle).order_by("id").first()
    Trial.objects.filter(pk=judged.pk).update(passed=False, wall_seconds=1.0, tokens=7)
    run_cycle()  # begin() hands back the running cycle
    judged.refresh_from_db()
    assert (judged.task_id, judged.passed, judged.tokens) == (None, False, 7)
    assert Task.objects.filter(project__staging=True).count() == Trial.objects.count() - 1 == 7


def test_owners_tasks_go_before_a_running_cycle(history, llm, project):
    live_mode("single")
    propose("temperatures.generator", 0.5)
    cycle = cycles.begin()
    waiting = Task.objects.create(project=project, request=REQUEST, status=Task.Status.QUEUED)
    assert cycles.advance(cycle.pk) is False and not Trial.objects.exclude(task=None).exists()
    Task.objects.filter(pk=waiting.pk).update(status=Task.Status.FAILED)
    cycles.advance(cycle.pk)
    assert Trial.objects.exclude(task=None).count() == 1


def test_one_cycle_at_a_time_and_none_when_cycles_are_off(history, settings):
    live_mode("single")
    propose("temperatures.generator", 0.5)
    first = cycles.begin()
    assert cycles.begin() == first and Cycle.objects.count() == 1
    settings.GRYPHGEN_CYCLES = False
    Cycle.objects.filter(pk=first.pk).update(status=Cycle.Status.KEPT)
    assert cycles.begin() is None and cycle_tasks.start_cycle.apply().get().startswith("cycles are off")


def test_candidates_the_safety_review_or_the_policy_refuses_never_run(history, monkeypatch):
    monkeypatch.setattr(cycles, "CATALOGUE", [])
    base = policy.live()
    unknown = propose("roster.generator", "gpt-9")
    secret = propose("temperatures.generator", 0.5)
    monkeypatch.setattr(cycles.safety, "review_proposal", lambda target, value: "refused for the test")
    cycle = cycles.begin()
    assert cycle.status == Cycle.Status.FAILED and "refused for the test" in cycle.decision
    unknown.refresh_from_db(), secret.refresh_from_db()
    assert unknown.status == secret.status == Proposal.Status.BLOCKED and "gpt-9" in unknown.safety_review
    assert policy.live() == base and not Task.objects.filter(project__staging=True).exists()
    assert list(policy.live().children.all()) == []  # no candidate version was written


def test_trials_that_cannot_be_judged_fail_the_cycle_and_change_nothing(history, llm, project):
    base = live_mode("single")
    propose("temperatures.generator", 0.5)
    cycle = cycles.begin()
    Task.objects.filter(project=project).delete()  # the history the trials were to replay is gone
    cycle = run_cycle()
    assert cycle.status == Cycle.Status.FAILED and "could not be judged" in cycle.decision
    assert policy.live() == base and Proposal.objects.get().status == Proposal.Status.REJECTED
    assert set(Trial.objects.values_list("error", flat=True)) == {"the original task was deleted"}


def canary_setup(project, accepted_after):
    base = policy.live()
    better = policy.changed(policy.values_of(base), "mode", Mode.SINGLE)
    adopted = policy.publish(better.model_dump(), project=None, parent=base, note="adopted by a cycle")
    earlier = timezone.now() - timedelta(hours=1)
    cycle = Cycle.objects.create(
        status=Cycle.Status.ADOPTED, baseline=base, adopted=adopted, canary=Cycle.Canary.WATCHING, finished=earlier
    )
    for i in range(10):
        Task.objects.create(
            project=project, request="r", status="accepted", policy=base, finished=earlier,
            started=earlier - timedelta(seconds=10),
        )  # fmt: skip
        Task.objects.create(
            project=project, request="r", policy=adopted, finished=timezone.now(),
            started=timezone.now() - timedelta(seconds=10), status="accepted" if i < accepted_after else "failed",
        )  # fmt: skip
    return cycle, base, adopted


def test_an_adopted_policy_that_regresses_live_is_rolled_back_with_an_alert(project, settings):
    cycle, base, adopted = canary_setup(project, accepted_after=5)
    assert "Rolled back" in cycles.canary()
    cycle.refresh_from_db()
    assert cycle.canary == Cycle.Canary.ROLLED_BACK and policy.live() == base
    alert = Alert.objects.get(failure_class="regression")
    assert "first 10 tasks" in alert.message and "accepted 50% against 100%" in alert.message


def test_an_adopted_policy_that_costs_far_more_seconds_live_is_rolled_back(project):
    cycle, base, adopted = canary_setup(project, accepted_after=10)
    for task in Task.objects.filter(policy=adopted):
        Task.objects.filter(pk=task.pk).update(started=task.finished - timedelta(seconds=300))
    for task in Task.objects.filter(policy=base):
        Task.objects.filter(pk=task.pk).update(started=task.finished - timedelta(seconds=100))
    assert "300 s per task against 100 s" in cycles.canary() and policy.live() == base


def test_an_adopted_policy_that_holds_up_live_is_kept(project):
    cycle, base, adopted = canary_setup(project, accepted_after=9)
    assert cycles.canary().endswith("kept")
    cycle.refresh_from_db()
    assert cycle.canary == Cycle.Canary.PASSED and policy.live() == adopted and not Alert.objects.exists()


def test_the_admin_runs_a_cycle_now_and_shows_its_ab_table(history, llm, client, user, settings):
    from django.urls import reverse

    live_mode("single")
    llm.script("generate", GOOD)
    propose("temperatures.generator", 0.5)
    client.force_login(user)
    response = client.post(reverse("admin:improvement_cycle_run_now"))
    assert response.status_code == 302
    cycle = Cycle.objects.get()  # eager: the whole cycle ran
    assert cycle.status in (Cycle.Status.KEPT, Cycle.Status.ADOPTED), cycle.decision
    page = client.get(reverse("admin:improvement_cycle_change", args=[cycle.pk])).content.decode()
    assert "A/B table" in page and "proposal #" in page and "4/4" in page and "<svg" in page
    assert "Run a cycle now" in client.get(reverse("admin:improvement_cycle_changelist")).content.decode()
    settings.GRYPHGEN_CYCLES = False
    page = client.post(reverse("admin:improvement_cycle_run_now"), follow=True).content.decode()
    assert "Improvement cycles are off" in page and Cycle.objects.count() == 1


def test_staff_who_are_not_superusers_see_no_cycles(client, django_user_model):
    from django.urls import reverse

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:improvement_cycle_changelist")).status_code == 403
    assert client.post(reverse("admin:improvement_cycle_run_now")).status_code in (302, 403)
    assert not Cycle.objects.exists()


def test_a_staging_task_that_errors_is_recorded_as_an_error_not_a_loss(history, project):
    live_mode("single")
    propose("temperatures.generator", 0.5)
    cycle = cycles.begin()
    trial = Trial.objects.order_by("id").first()
    staging = cycles.staging_project()
    broken = Task.objects.create(
        project=staging, request=REQUEST, status=Task.Status.ERROR, message="no endpoint of the small model answered",
        finished=timezone.now(), policy=trial.arm.policy,
    )  # fmt: skip
    Trial.objects.filter(pk=trial.pk).update(task=broken)
    cycles.advance(cycle.pk)
    trial.refresh_from_db()
    assert trial.passed is None and trial.error.startswith("the staging task ended in error: no endpoint")
    assert Cycle.objects.get(pk=cycle.pk).status == Cycle.Status.RUNNING  # the other trials go on


def test_an_adopted_policy_whose_work_owners_roll_back_is_rolled_back(project):
    from agents.models import Checkpoint

    cycle, base, adopted = canary_setup(project, accepted_after=10)

    def deployed(task, kind=Deployment.Kind.DEPLOY, checkpoint=None):
        checkpoint = checkpoint or Checkpoint.objects.create(task=task, round=1, good=True, decision="accept")
        Deployment.objects.create(project=project, checkpoint=checkpoint, kind=kind, commit_sha="c", tree_sha="t")
        return checkpoint

    first = deployed(Task.objects.filter(policy=base).first())
    for task in Task.objects.filter(policy=adopted).order_by("pk"):
        deployed(task)
    deployed(None, Deployment.Kind.ROLLBACK, checkpoint=first)  # the owner went back to the old version's code
    assert "rolled back by owners 100% against 0%" in cycles.canary() and policy.live() == base


def test_the_catalogue_tries_first_the_mode_the_meta_guardian_saw_do_best(project, settings):
    settings.GRYPHGEN_CYCLE_ARMS = 1
    live_mode("pipeline")
    for i in range(10):
        for mode, accepted in (("single", 8), ("consensus_one", 2)):
            Task.objects.create(project=project, request="r", mode=mode, finished=timezone.now(),
                                status="accepted" if i < accepted else "failed", verdict_tests={"t.py": "x"})  # fmt: skip
    assert [label for label, _, _ in cycles.catalogue_order()][:2] == ["one plain call", "consensus on one model"]
    cycle = cycles.begin()
    assert [arm.label for arm in cycle.arms.all()] == ["live: v2", "one plain call"]


def test_a_projects_own_line_gets_its_turn_on_its_own_history_only(history, llm, project, user):
    live_mode("single")
    llm.script("generate", GOOD)
    own = policy.publish(policy.live().values, project=project, parent=policy.live(), note="the project's own line")
    Project.objects.create(owner=user, name="follows the global line")  # no own line: never a turn of its own
    propose("temperatures.generator", 0.5)
    first = run_cycle()
    assert first.project is None, "the global line goes first on a tie"
    second = cycles.begin()
    assert (second.project, second.baseline) == (project, own)
    assert {Task.objects.get(pk=p["task"]).project for p in second.problems} == {project}
    assert {p["source"] for p in second.problems} == {"history"}  # no HumanEval for a project's line
    candidate = second.arms.get(baseline=False).policy
    assert candidate.project == project and not candidate.live and policy.live() != candidate
