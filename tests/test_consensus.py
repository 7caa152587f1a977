"""Consensus mode: the vote, the extra inputs, the batched probe, escalation and held code."""

import pytest

from agents import behaviour, policy
from agents.models import AgentCall, SandboxRun, Task
from agents.services import submit_task
from tests.test_workflow_branches import BAD, GOOD, REQUEST

db = pytest.mark.django_db(transaction=True)

# Three ways to write the same slugify, and one that passes the request's examples but behaves
# differently elsewhere (on "").
GOOD2 = '```python\nimport re\n\n\ndef slugify(text):\n    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))\n```'
GOOD3 = (
    "```python\ndef slugify(text):\n    out = ''.join(c if c.isascii() and c.isalnum() else ' ' for c in text.lower())\n"
    "    return '-'.join(out.split())\n```"
)
OUTLIER = (  # passes the examples, but names an empty slug
    '```python\nimport re\n\n\ndef slugify(text):\n    return "-".join(re.findall(r"[a-z0-9]+", text.lower())) or "untitled"\n```'
)
BROKEN = "```python\ndef slugify(text)\n    return text\n```"  # a syntax error
ONE_EXAMPLE = REQUEST.split('>>> slugify("  A')[0]  # a weak verdict: one example
LARGE = "qwen2.5-coder-1.5b-instruct"


# --- the vote (no servers) ------------------------------------------------------------------


# --- extra inputs (no servers) ------------------------------------------------------------------


# --- the batched probe, in the sandbox -----------------------------------------------------------------


def test_one_sandbox_run_probes_every_candidate_and_says_which_hit_a_limit(settings):
    settings.GRYPHGEN_SANDBOX_LIMITS = {**settings.GRYPHGEN_SANDBOX_LIMITS, "wall_seconds": 12}
    code = {
        0: "def f(x):\n    return x * 2\n",
        1: "def f(x):\n    while True:\n        pass\n",  # never returns
        2: "raise SystemExit('at import')\n",
        3: "import os\n\ndef f(x):\n    print('x' * 10_000_000)\n    return 2 * x\n",  # prints megabytes
        4: "def f(x):\n    return [0] * (10 ** 10)\n",  # asks for 80 GB
        5: "def f(x):\n    return x + x + 0.0000001\n",
    }
    probes, result = behaviour.run({n: {"solution.py": src} for n, src in code.items()}, ["[1]", "[2.5]"], "f")
    assert result.status == "passed", result.stderr
    assert probes[0].outputs == ["= 2", "= 5.0"] and probes[0].status == "ok"
    assert probes[1].status == "time" or probes[1].outputs == ["timeout", "timeout"]
    assert probes[2].status == "crashed" and probes[2].outputs == ["import: SystemExit"] * 2
    assert probes[3].outputs == probes[0].outputs  # its printing went nowhere
    assert probes[4].outputs == ["raise MemoryError"] * 2
    assert probes[5].outputs == ["= 2.0", "= 5.0"]  # floats compared to 6 significant digits


# --- the workflow, scripted --------------------------------------------------------------------------


def generator_requests(llm):
    return [r["body"] for r in llm.requests if r["purpose"] == "generate"]


@db
def test_a_draft_on_strong_tests_is_accepted_with_one_call(eager, llm, project):
    llm.script("generate", GOOD)
    task = submit_task(project, REQUEST, mode="consensus")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    assert llm.purposes() == ["generate"] and task.max_rounds == 1
    chosen = task.checkpoints.get(chosen=True)
    assert chosen.evidence["how"] == "the greedy draft passed strong verdict tests" and chosen.decision == "accept"
    assert not SandboxRun.objects.filter(task=task, purpose="probe").exists()


@db
def test_a_broken_draft_is_resampled_and_the_agreeing_group_wins(eager, llm, project, settings):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 4
    settings.GRYPHGEN_CONSENSUS_MIN_GROUP = 3
    llm.script("generate", BROKEN, GOOD, OUTLIER, GOOD2, GOOD3)
    task = submit_task(project, REQUEST, mode="consensus")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    bodies = generator_requests(llm)
    assert len(bodies) == 5 and all(b["model"] != LARGE for b in bodies)  # no escalation
    assert not any("previous attempt" in b["messages"][-1]["content"] for b in bodies)  # resampled, not repaired
    assert len({b["seed"] for b in bodies}) == 5 and bodies[0]["temperature"] < bodies[1]["temperature"]
    chosen = task.checkpoints.get(chosen=True)
    assert chosen.candidate == 1 and chosen.evidence["group"] == [2, 4, 5]
    assert (chosen.evidence["agreeing"], chosen.evidence["candidates"]) == (3, 4)
    assert chosen.evidence["splitting_inputs"] and "3 of 4 candidates agree" in chosen.verdict["evidence"]
    probe = SandboxRun.objects.get(task=task, purpose="probe")  # the whole batch in one run
    assert probe.status == "passed" and task.checkpoints.exclude(behaviour=None).count() == 4
    assert task.probe_inputs[:3] == ["['Hello, World!']", "['  A  b ']", "['x']"]
    page_evidence = task.events.filter(stage="judge").last().message
    assert "candidate 2" in page_evidence and "3 of 4" in page_evidence


@db
def test_without_escalation_a_lone_passing_draft_loses_to_the_majority(eager, llm, project, settings):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 3
    llm.script("generate", OUTLIER, GOOD, GOOD2, GOOD3)
    task = submit_task(project, ONE_EXAMPLE, mode="consensus_one")  # weak verdict: the draft alone is not enough
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.get(chosen=True).candidate == 1 and not task.escalated
    assert (project.workspace / "deployed" / "solution.py").read_text().startswith("import re")


@db
@pytest.mark.parametrize(
    "why, request_text, replies, escalates",
    [
        ("no candidate passes", REQUEST, [BAD, BAD, BAD, BAD], True),
        ("the winning group is small", REQUEST, [BAD, GOOD, OUTLIER, BAD], True),
        ("the verdict is weak", ONE_EXAMPLE, [BAD, GOOD, GOOD2, GOOD3], True),
        ("strong verdict and a big group", REQUEST, [BAD, GOOD, GOOD2, GOOD3], False),
    ],
)
def test_escalation_fires_on_each_condition_and_never_otherwise(
    eager, llm, project, settings, why, request_text, replies, escalates
):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 3
    settings.GRYPHGEN_CONSENSUS_ESCALATION_SAMPLES = 2
    settings.GRYPHGEN_CONSENSUS_MIN_GROUP = 2
    llm.script("generate", *replies, GOOD)  # the escalated model writes the good code
    task = submit_task(project, request_text, mode="consensus")
    task.refresh_from_db()
    bodies = generator_requests(llm)
    assert task.escalated == escalates, why
    assert [b["model"] == LARGE for b in bodies] == [False] * 4 + [True] * 2 * escalates, why
    if escalates:
        assert bodies[4]["temperature"] < bodies[5]["temperature"]  # the stronger model's greedy answer first
        assert task.status == Task.Status.ACCEPTED, task.message
        assert task.checkpoints.filter(model__contains="scripted").count() == 6


@db
def test_a_task_with_no_usable_candidate_fails_and_deploys_nothing(eager, llm, project, settings):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 2
    llm.script("generate", BROKEN)
    task = submit_task(project, REQUEST, mode="consensus")
    task.refresh_from_db()
    assert task.status == Task.Status.FAILED and task.escalated
    assert task.checkpoints.count() == 1 + 2 + 2 and not project.deployments.exists()


@db
def test_held_code_is_deployed_only_when_the_owner_accepts(eager, llm, project, settings, client, stranger):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 2
    project.hold_below = 0.9
    project.save()
    llm.script("generate", GOOD, GOOD2, OUTLIER)
    task = submit_task(project, ONE_EXAMPLE, mode="consensus_one")
    task.refresh_from_db()
    assert task.status == Task.Status.HELD and "Held for your review" in task.message
    assert not project.deployments.exists() and not SandboxRun.objects.filter(task=task, purpose="deploy").exists()
    client.force_login(stranger)
    assert client.post(f"/tasks/{task.pk}/review", {"decision": "deploy"}).status_code == 404
    client.force_login(project.owner)
    page = client.get(task.get_absolute_url()).content.decode()
    assert "Deploy this code" in page and "Why this code" in page
    client.post(f"/tasks/{task.pk}/review", {"decision": "deploy"})
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED and task.reviewed_by == project.owner
    assert project.deployments.count() == 1


@db
def test_an_unparsable_monitor_answer_is_asked_again_once_with_the_error(eager, llm, project):
    llm.script("monitor_tests", {"tests": [{"call": "roman('IV'", "expected": "(IV)"}]},
               {"tests": [{"call": "roman('IV')", "expected": "4"}]})  # fmt: skip
    llm.script("generate", "```python\ndef roman(s):\n    return 4\n```")
    task = submit_task(project, "Write `roman(s)` that converts a Roman numeral to an int.", mode="single")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    asks = [r["body"]["messages"][-1]["content"] for r in llm.requests if r["purpose"] == "monitor_tests"]
    assert len(asks) == 2 and "unusable" in asks[1] and "unusable" not in asks[0]


PROSE = (
    "Write a function `slugify(text)` that lowercases text, replaces every run of characters that are not "
    "letters or digits with a single hyphen, and strips hyphens from both ends."
)
MONITOR_WITH_A_WRONG_CASE = {
    "tests": [
        {"call": "slugify('Hello, World!')", "expected": "'hello-world'"},
        {"call": "slugify('A  b')", "expected": "'A-b'"},  # wrong: the request says lowercase
    ]
}


@db
@pytest.mark.parametrize("set_aside", [True, False])
def test_a_monitor_case_no_candidate_passes_is_set_aside_before_the_final_vote(
    eager, llm, project, settings, set_aside
):
    settings.GRYPHGEN_CONSENSUS_SET_ASIDE = set_aside
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 3
    settings.GRYPHGEN_CONSENSUS_MIN_GROUP = 3
    llm.script("monitor_tests", MONITOR_WITH_A_WRONG_CASE)
    llm.script("generate", GOOD, GOOD2, GOOD3, GOOD)
    task = submit_task(project, PROSE, mode="consensus_one")
    task.refresh_from_db()
    if not set_aside:  # the wrong case stands: nobody passes it, nothing is deployed
        assert task.status == Task.Status.FAILED and not project.deployments.exists()
        assert task.verdict_tests["test_monitor.py"].count("def test_case_") == 2
        return
    assert task.status == Task.Status.ACCEPTED, task.message
    monitor_file = task.verdict_tests["test_monitor.py"]
    assert monitor_file.count("def test_case_") == 1 and "'A-b'" not in monitor_file
    chosen = task.checkpoints.get(chosen=True)
    assert chosen.evidence["set_aside"] == ["test_case_2"] and (chosen.tests_passed, chosen.tests_total) == (1, 1)
    assert "1 monitor case(s) no candidate passed set aside" in chosen.verdict["evidence"]
    assert SandboxRun.objects.get(task=task, purpose="deploy").status == "passed"  # on the cases that stand


@db
@pytest.mark.parametrize(
    "replies, accepted", [((GOOD, GOOD2, GOOD3, GOOD), True), ((GOOD, OUTLIER, BAD, GOOD2), False)]
)
def test_when_no_monitor_case_stands_a_clear_majority_s_behaviour_becomes_the_verdict(
    eager, llm, project, settings, replies, accepted
):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 3
    settings.GRYPHGEN_CONSENSUS_MIN_GROUP = 3
    llm.script("monitor_tests", {"tests": [MONITOR_WITH_A_WRONG_CASE["tests"][1]]})  # its only case is wrong
    llm.script("generate", *replies)
    task = submit_task(project, PROSE, mode="consensus_one")
    task.refresh_from_db()
    if not accepted:  # no majority agrees: the monitor's case stands and nothing is deployed
        assert task.status == Task.Status.FAILED and not project.deployments.exists()
        assert task.verdict_source == "monitor"
        return
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.verdict_source == "agreement" and list(task.verdict_tests) == ["test_agreement.py"]
    agreement = task.verdict_tests["test_agreement.py"]
    assert "assert slugify('Hello World') == ('hello-world')" in agreement and "'A-b'" not in agreement
    chosen = task.checkpoints.get(chosen=True)
    assert chosen.good and chosen.evidence["verdict"] == "agreement" and chosen.evidence["agreeing"] == 4
    assert SandboxRun.objects.get(task=task, purpose="deploy").status == "passed"  # run for real at deploy


MONITOR_WITHOUT_LITERALS = {  # a small monitor's answer to a prose request: calls right, expected values not literals
    "tests": [
        {"call": "slugify('Hello, World!')", "expected": "hello-world"},
        {"call": "slugify('  Tabs\tand  spaces ')", "expected": "(tabs-and-spaces)"},
        {"call": "slugify(text)", "expected": "text"},  # no literal arguments: no call to keep
    ]
}


@db
@pytest.mark.parametrize(
    "mode, replies, outcome",
    [
        ("consensus_one", (GOOD, GOOD2, GOOD3, GOOD), "agreement"),
        ("consensus_one", (GOOD, OUTLIER, BAD, GOOD2), "no majority"),
        ("single", (GOOD,), "no tests"),
    ],
)
def test_calls_without_expected_values_are_settled_only_by_a_clear_majority(
    eager, llm, project, settings, mode, replies, outcome
):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 3
    settings.GRYPHGEN_CONSENSUS_MIN_GROUP = 3
    llm.script("monitor_tests", MONITOR_WITHOUT_LITERALS)
    llm.script("generate", *replies)
    task = submit_task(project, PROSE, mode=mode)
    task.refresh_from_db()
    if outcome == "no tests":  # one call has nobody to agree with: the task stops at the plan, as before
        assert task.status == Task.Status.FAILED and "could not write verdict tests" in task.message
        assert task.verdict_tests is None and not task.checkpoints.exists()
        return
    assert llm.purposes().count("monitor_tests") == 2  # asked once more with the reason first
    if outcome == "no majority":
        assert task.status == Task.Status.FAILED and not project.deployments.exists()
        assert task.verdict_source == "calls" and "def test_call_2():" in task.verdict_tests["test_calls.py"]
        assert "def test_call_3" not in task.verdict_tests["test_calls.py"]
        chosen = task.checkpoints.get(chosen=True)
        assert not chosen.good and chosen.test_results[-1]["name"] == "agreement"
        assert "no clear majority" in " ".join(task.events.values_list("message", flat=True))
        return
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.verdict_source == "agreement" and list(task.verdict_tests) == ["test_agreement.py"]
    assert "slugify('Hello, World!') == ('hello-world')" in task.verdict_tests["test_agreement.py"]
    chosen = task.checkpoints.get(chosen=True)
    assert chosen.good and chosen.evidence["agreeing"] == 4 and chosen.evidence["verdict"] == "agreement"
    assert SandboxRun.objects.get(task=task, purpose="deploy").status == "passed"


@db
def test_cases_are_never_set_aside_from_examples_or_all_at_once(eager, llm, project, settings):
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 3
    settings.GRYPHGEN_CONSENSUS_MIN_GROUP = 3
    llm.script("generate", BAD)  # fails every example: the request's examples are never set aside
    task = submit_task(project, REQUEST, mode="consensus_one")
    task.refresh_from_db()
    assert task.status == Task.Status.FAILED and "set aside" not in str(task.events.values_list("message"))
    llm.reset()
    llm.script("monitor_tests", MONITOR_WITH_A_WRONG_CASE)
    llm.script("generate", BAD)  # fails both monitor cases, and agrees only on answering None to everything
    task = submit_task(project, PROSE, mode="consensus_one")
    task.refresh_from_db()
    assert task.status == Task.Status.FAILED and task.verdict_tests["test_monitor.py"].count("def test_case_") == 2


@db
def test_the_roster_and_a_task_choose_the_generator_model(eager, llm, project, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2  # the same request again goes to the generator
    llm.script("generate", GOOD)
    settings.GRYPHGEN_ROSTER = {**settings.GRYPHGEN_ROSTER, "generator": "large"}  # the first policy version
    first = submit_task(project, REQUEST, mode="single")
    values = policy.changed(policy.of(first), "roster.generator", "small")
    second = policy.publish(values.model_dump(), project=None, parent=first.policy, note="back to small")
    submit_task(project, REQUEST.replace("slugify", "slug"), mode="single", generator_model="large")
    submit_task(project, REQUEST.replace("slugify", "slug2"), mode="single")
    assert [b["model"] for b in generator_requests(llm)] == [LARGE, LARGE, "qwen2.5-coder-0.5b-instruct"]
    assert [t.policy.version for t in Task.objects.order_by("pk")] == [1, 2, 2] and second.live
    assert AgentCall.objects.filter(role="generator").count() == 3


@db
def test_an_api_key_comes_from_the_environment_and_is_stored_nowhere(llm, settings, monkeypatch):
    from agents.llm import LLMClient

    monkeypatch.setenv("GRYPHGEN_LLM_API_KEY", "s3cret-key")
    LLMClient().chat("generator", [{"role": "user", "content": "hi"}], purpose="generate")
    assert llm.requests[-1]["authorization"] == "Bearer s3cret-key"
    call = AgentCall.objects.get()
    assert "s3cret" not in repr([call.prompt, call.response, call.error, call.endpoint, call.model])
    monkeypatch.delenv("GRYPHGEN_LLM_API_KEY")
    LLMClient().chat("generator", [{"role": "user", "content": "hi"}], purpose="generate")
    assert llm.requests[-1]["authorization"] == "Bearer not-needed"


# --- reading replies (no servers) --------------------------------------------------------------


@db
def test_a_vote_won_by_a_lone_candidate_is_held_not_deployed(eager, llm, project, settings):
    """Tuned on dev: a winner no other candidate agrees with was wrong 4 times in 6."""
    settings.GRYPHGEN_CONSENSUS_SAMPLES = 2
    settings.GRYPHGEN_CONSENSUS_ACCEPT_GROUP = 2
    llm.script("generate", GOOD, OUTLIER, BAD)
    task = submit_task(project, ONE_EXAMPLE, mode="consensus_one")
    task.refresh_from_db()
    assert task.status == Task.Status.HELD and "no other candidate behaves like it" in task.message
    assert task.checkpoints.get(chosen=True).evidence["agreeing"] == 1 and not project.deployments.exists()
