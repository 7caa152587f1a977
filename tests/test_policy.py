"""The versioned policy: settings give version 1, tasks record their version, new versions and
rollbacks change what the next task does (and only that), bad values are refused by name."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from agents import policy
from agents.models import Mode, Policy, Project, Task
from tests.test_workflow_branches import GOOD, run

pytestmark = pytest.mark.django_db(transaction=True)


def generator_temperatures(llm):
    return [r["body"]["temperature"] for r in llm.requests if r["purpose"] == "generate"]


def test_the_settings_write_version_one_once_and_every_task_records_its_version(eager, llm, project, settings):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 5
    llm.script("generate", GOOD)
    first = run(project, mode="single")
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 7  # settings changed later do not rewrite a stored version
    second = run(project, mode="single")
    stored = Policy.objects.get()
    assert (stored.project, stored.version, stored.live, stored.parent) == (None, 1, True, None)
    assert first.policy == second.policy == stored and policy.of(second).consensus_samples == 5


def test_a_new_version_changes_the_next_task_and_a_rollback_changes_it_back(eager, llm, project, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2  # the same request again goes to the generator, not to memory
    llm.script("generate", GOOD)
    first = run(project, mode="single")
    v1 = first.policy
    hotter = policy.changed(policy.of(first), "temperatures.generator", 0.55)
    v2 = policy.publish(hotter.model_dump(), project=None, parent=v1, note="a hotter generator")
    second = run(project, mode="single")
    policy.make_live(v1)
    third = run(project, mode="single")
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.live, v2.live, v2.version, v2.parent) == (True, False, 2, v1)
    assert [t.policy.version for t in (first, second, third)] == [1, 2, 1]
    usual = policy.of(first).temperatures["generator"]
    assert generator_temperatures(llm) == [usual, 0.55, usual]
    assert policy.diff(policy.values_of(v1), policy.values_of(v2)) == [("temperatures.generator", usual, 0.55)]


def test_a_projects_own_line_overrides_the_global_one_for_that_project_only(eager, llm, project, user):
    llm.script("generate", GOOD)
    base = policy.live()
    own = policy.changed(policy.values_of(base), "max_rounds", 2)
    mine = policy.publish(own.model_dump(), project=project, parent=base, note="two rounds here")
    other = Project.objects.create(owner=user, name="other", default_mode=Mode.PIPELINE)
    llm.script("decide", {"decision": "accept", "reason": "ok"})
    assert run(project).policy == mine and run(project).max_rounds == 2
    theirs = run(other)
    assert theirs.policy == base and theirs.max_rounds == policy.values_of(base).max_rounds
    assert mine.version == 1  # each line counts its own versions


def test_a_project_without_a_mode_runs_the_policys_mode(eager, llm, user):
    llm.script("generate", GOOD)
    project = Project.objects.create(owner=user, name="follows the policy")
    single = policy.changed(policy.values_of(policy.live()), "mode", "single")
    policy.publish(single.model_dump(), project=None, parent=policy.live(), note="single by default")
    assert run(project).mode == "single" and llm.purposes() == ["generate"]


def test_one_live_version_and_one_row_per_version_in_each_line(project):
    base = policy.live()
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.create(project=None, version=2, values=base.values, live=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.create(project=None, version=1, values=base.values)
    Policy.objects.create(project=project, version=1, values=base.values, live=True)  # another line
    assert Policy.objects.filter(live=True).count() == 2


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("roster.generator", "gpt-9", "names the model 'gpt-9'"),
        ("temperatures.generator", 2.5, "temperatures.generator"),
        ("max_rounds", 0, "max_rounds"),
        ("mode", "yolo", "mode"),
        ("generator_prompt", "{evil}", "generator_prompt"),
        ("consensus_samples", "many", "consensus_samples"),
        ("sandbox.memory_mb", 4096, "not a value of the policy"),
        ("roster.judge", "small", "not a value of the policy"),
        ("max_rounds.generator", 2, "not a value of the policy"),
    ],
)
def test_bad_values_are_refused_by_name_and_nothing_is_written(path, value, words):
    base = policy.live()
    with pytest.raises(policy.PolicyError) as refused:
        values = policy.changed(policy.values_of(base), path, value)
        policy.publish(values.model_dump(), project=None, parent=base, note="bad")
    assert words in str(refused.value)
    with pytest.raises(policy.PolicyError, match="extra_key"):
        policy.check({**base.values, "extra_key": 1})
    assert list(Policy.objects.all()) == [base] and base.live


def test_a_stored_version_edited_into_nonsense_stops_the_task_with_a_clear_message(eager, llm, project):
    base = policy.live()
    Policy.objects.filter(pk=base.pk).update(values={**base.values, "max_rounds": -1})
    with pytest.raises(policy.PolicyError, match="global v1.*max_rounds"):
        run(project, mode="single")
    assert not Task.objects.exists()


def test_a_benchmark_project_follows_its_settings_with_a_new_version_only_on_change(project, settings):
    first = policy.follow_settings(project)
    assert policy.follow_settings(project) == first and first.project == project
    settings.GRYPHGEN_ROSTER = {**settings.GRYPHGEN_ROSTER, "monitor": "small"}
    second = policy.follow_settings(project)
    assert (second.version, second.parent, policy.values_of(second).roster["monitor"]) == (2, first, "small")


def test_the_admin_shows_each_versions_changes_and_makes_one_live(client, user, project):
    base = policy.live()
    v2 = policy.publish(
        policy.changed(policy.values_of(base), "consensus_samples", 6).model_dump(), project=None, parent=base,
        note="more samples",
    )  # fmt: skip
    client.force_login(user)
    page = client.get(reverse("admin:agents_policy_changelist")).content.decode()
    assert "consensus_samples: 4 → 6" in page and "first version" in page
    assert client.get(reverse("admin:agents_policy_change", args=[v2.pk])).status_code == 200
    response = client.post(
        reverse("admin:agents_policy_changelist"), {"action": "make_live", "_selected_action": [base.pk]}
    )
    assert response.status_code == 302 and policy.live() == base


def test_the_command_line_shows_sets_and_rolls_back_the_policy(project, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    def gryphgen(*args):
        out = StringIO()
        call_command("gryphgen", "policy", *args, stdout=out)
        return out.getvalue()

    samples = settings.GRYPHGEN_CONSENSUS_SAMPLES
    assert f'"consensus_samples": {samples}' in gryphgen("show")
    said = gryphgen("set", "consensus_samples=6", "roster.generator=large", "--note", "more samples, larger model")
    assert "global v2 (live) is live" in said and f"consensus_samples: {samples} → 6" in said
    assert "roster.generator: 'small' → 'large'" in said
    assert policy.values_of(policy.live()).consensus_samples == 6 and policy.live().note == "more samples, larger model"
    for bad, words in (
        ("consensus_samples=0", "consensus_samples"),
        ("nowhere=1", "not a value"),
        ("mode", "PATH=VALUE"),
    ):
        with pytest.raises(CommandError, match=words):
            gryphgen("set", bad)
    assert Policy.objects.count() == 2  # nothing written for a refused change
    assert "is live" in gryphgen("live", "1") and policy.live().version == 1
    with pytest.raises(CommandError, match="no version 9"):
        gryphgen("live", "9")
    assert "no change" in gryphgen("from-settings")  # v1 holds the settings' values
    settings.GRYPHGEN_CONSENSUS_SAMPLES = samples + 1
    said = gryphgen("from-settings")
    assert f"consensus_samples: {samples} → {samples + 1}" in said and policy.live().version == 3
    own = gryphgen("set", "max_rounds=1", "--project", str(project.pk))
    assert f"{project} v1 (live) is live" in own and policy.live(project).project == project
    assert policy.live().version == 3  # the global line is untouched
    with pytest.raises(CommandError, match="no project with id 999"):
        gryphgen("show", "--project", "999")


def test_start_up_names_the_live_version_and_warns_when_the_environment_differs(settings):
    from io import StringIO

    from agents.management.commands.gryphgen import Command

    command = Command(stdout=StringIO())
    command.report_policy()
    assert "policy: global v1 (live) (from the settings)" in command.stdout._out.getvalue()
    assert "differs" not in command.stdout._out.getvalue()
    settings.GRYPHGEN_MAX_ROUNDS = 5
    command.report_policy()
    said = command.stdout._out.getvalue()
    assert "the environment differs from the live policy (max_rounds 3 → 5)" in said and "from-settings" in said
    assert policy.values_of(policy.live()).max_rounds == 3  # a warning, not a change


def test_a_project_with_its_own_line_and_tasks_can_be_deleted_but_a_used_global_version_cannot(
    eager, llm, project, user
):
    from django.db.models import RestrictedError

    llm.script("generate", GOOD)
    base = policy.live()
    v1 = policy.publish(base.values, project=project, parent=base, note="own line")
    policy.publish(
        policy.changed(policy.values_of(v1), "max_rounds", 1).model_dump(), project=project, parent=v1, note="v2"
    )
    run(project, mode="single")
    project.delete()
    assert list(Policy.objects.all()) == [base]
    other = Project.objects.create(owner=user, name="other")
    run(other, mode="single")
    with pytest.raises(RestrictedError):
        base.delete()
