"""Modes and budgets: single (the baseline), pipeline, competitive; every mode keeps the same books."""

import time

import pytest
from django.core.exceptions import ValidationError

from agents import pipeline
from agents.models import AgentCall, Checkpoint, Task
from agents.services import submit_task
from tests.helpers import wait_for_task
from tests.test_workflow_branches import BAD, GOOD, HALF, REQUEST, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_single_mode_is_one_generator_call_and_nothing_else(eager, llm, project):
    llm.script("generate", GOOD)
    task = run(project, mode="single")
    assert (task.status, task.stop_reason, task.max_rounds) == (Task.Status.ACCEPTED, "accepted", 1)
    assert llm.purposes() == ["generate"]
    assert task.checkpoints.get().decision == "accept" and project.deployments.count() == 1


def test_single_mode_does_not_loop_on_failure(eager, llm, project):
    llm.script("generate", BAD)
    task = run(project, mode="single", max_rounds=5)
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "rounds")
    assert llm.purposes() == ["generate"] and task.checkpoints.count() == 1


def test_competitive_mode_chooses_the_candidate_that_passes(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 3
    llm.script("generate", BAD, GOOD, HALF)
    task = run(project, mode="competitive")
    assert task.status == Task.Status.ACCEPTED, task.message
    candidates = task.checkpoints.order_by("candidate")
    assert [(c.candidate, c.tests_passed, c.chosen) for c in candidates] == [(0, 0, False), (1, 3, True), (2, 1, False)]
    assert candidates.get(chosen=True).decision == "accept"
    assert llm.purposes() == ["generate"] * 3 + ["monitor_verdict", "decide"]
    seeds = [r["body"]["seed"] for r in llm.requests if r["purpose"] == "generate"]
    temperatures = [r["body"]["temperature"] for r in llm.requests if r["purpose"] == "generate"]
    assert len(set(seeds)) == 3 and temperatures[0] < temperatures[1] == temperatures[2]
    assert "candidate 2 chosen" in task.events.get(stage="choose").message
    assert AgentCall.objects.filter(task=task, purpose="generate", checkpoint__isnull=False).count() == 3


def test_competitive_ties_go_to_fewer_analyzer_errors(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 2
    unused_import = GOOD.replace("import re\n", "import re\nimport os\n")  # ruff F401: a warning, not an error
    undefined = GOOD.replace('"-")\n```', '"-") or undefined_name\n```')  # F821: an error
    llm.script("generate", undefined, unused_import)
    task = run(project, mode="competitive")
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.get(chosen=True).candidate == 1


def test_a_redelivered_choose_decides_once(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 2
    llm.script("generate", GOOD)
    task = run(project, mode="competitive")
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    pipeline.choose(task.pk, 1)
    assert llm.purposes().count("decide") == 1 and task.checkpoints.filter(chosen=True).count() == 1


def test_competitive_candidates_run_in_parallel_on_a_real_worker(worker, llm, project, settings):
    llm.script("generate", BAD, GOOD, BAD)
    task = wait_for_task(submit_task(project, REQUEST, mode="competitive"), timeout=120)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.count() == 3 and task.checkpoints.get(chosen=True).tests_passed == 3
    assert list(task.events.filter(stage="choose").values_list("stage", flat=True)) == ["choose"]


def test_token_budget_stops_the_loop_with_a_reason(eager, llm, project):
    llm.script("generate", BAD)
    task = run(project, budget_tokens=1)
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "tokens")
    assert "token budget spent" in task.message and task.checkpoints.count() == 1


def test_wall_time_budget_stops_the_loop_with_a_reason(eager, llm, project, monkeypatch):
    llm.script("generate", BAD)
    reply = llm.next_reply

    def slow(purpose):
        time.sleep(1.2 if purpose == "generate" else 0)
        return reply(purpose)

    monkeypatch.setattr(llm, "next_reply", slow)
    task = run(project, budget_seconds=1)
    assert (task.status, task.stop_reason) == (Task.Status.FAILED, "wall_time")
    assert task.checkpoints.count() == 1 and "wall-time budget spent" in task.message


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mode": "telepathy"}, "Unknown mode 'telepathy'"),
        ({"budget_tokens": 0}, "token budget must be a positive"),
        ({"budget_seconds": -5}, "wall-time budget must be a positive"),
        ({"max_rounds": 0}, "number of rounds must be a positive"),
    ],
)
def test_bad_mode_and_budgets_are_refused_before_anything_runs(project, kwargs, error):
    with pytest.raises(ValidationError, match=error):
        submit_task(project, REQUEST, **kwargs)
    assert not Task.objects.exists() and not Checkpoint.objects.exists()


def test_collaborative_mode_breaks_a_tie_by_the_judges_vote(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 3
    alternative = GOOD.replace('"-")\n```', '"-")  # same behaviour, other text\n```')
    llm.script("generate", GOOD, BAD, alternative)
    llm.script("vote", {"best": 3, "reason": "clearer"})
    task = run(project, mode="collaborative")
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.checkpoints.get(chosen=True).candidate == 2  # the judges' pick among the two that pass
    votes = [r for r in llm.requests if r["purpose"] == "vote"]
    assert len(votes) == 2 and {r["body"]["max_tokens"] for r in votes} == {384, 512}  # analyzer and monitor
    offered = votes[0]["body"]["response_format"]["json_schema"]["schema"]["properties"]["best"]["enum"]
    assert offered == [1, 3]  # only the tied candidates are on the ballot
    assert "judges' votes {3: 2}" in task.events.get(stage="choose").message


def test_collaborative_mode_without_a_tie_needs_no_vote(eager, llm, project, settings):
    settings.GRYPHGEN_CANDIDATES = 2
    llm.script("generate", HALF, GOOD)
    task = run(project, mode="collaborative")
    assert task.checkpoints.get(chosen=True).candidate == 1 and "vote" not in llm.purposes()


def test_debate_mode_critics_argue_and_the_repair_hears_them(eager, llm, project, settings):
    settings.GRYPHGEN_DEBATE_TURNS = 2
    llm.script("generate", BAD, GOOD)
    llm.script("critic", {"points": "returns None for every input"}, {"points": "it at least runs"})
    llm.script("decide", {"decision": "accept", "reason": "critics agree"})
    task = run(project, mode="debate")
    assert task.status == Task.Status.ACCEPTED, task.message
    first = task.checkpoints.get(round=1)
    assert [turn["side"] for turn in first.verdict["debate"]] == ["prosecutor", "defender"] * 2
    assert first.verdict["evidence"] == "it at least runs" or first.verdict["debate"][0]["points"].startswith("returns")
    repair_prompt = [r for r in llm.requests if r["purpose"] == "generate"][1]["body"]["messages"][1]["content"]
    assert "The critics said" in repair_prompt and "returns None for every input" in repair_prompt
    judge_prompt = [r for r in llm.requests if r["purpose"] == "decide"][0]["body"]["messages"][1]["content"]
    assert "Debate between the critics" in judge_prompt
    assert llm.purposes().count("critic") == 8  # 2 turns × 2 critics × 2 rounds


PARTS = {"parts": [{"function": "words", "spec": "lowercase alphanumeric runs of a string, in order"},
                   {"function": "join", "spec": "join strings with hyphens"}]}  # fmt: skip
WORDS = '```python\nimport re\n\n\ndef words(text):\n    return re.findall(r"[a-z0-9]+", text.lower())\n```'
JOIN = '```python\ndef join(parts):\n    return "-".join(parts)\n```'
INTEGRATED = (
    "```python\nfrom part_1 import words\nfrom part_2 import join\n\n\ndef slugify(text):\n"
    "    return join(words(text))\n```"
)


def test_hierarchical_mode_splits_builds_parts_and_integrates(eager, llm, project):
    llm.script("split", PARTS)
    llm.script("part", WORDS, JOIN)
    llm.script("integrate", INTEGRATED)
    task = run(project, mode="hierarchical")
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.subtasks == PARTS["parts"]
    integrated = task.checkpoints.get(chosen=True)
    assert (integrated.round, integrated.candidate) == (1, 0)
    assert sorted(integrated.files) == ["part_1.py", "part_2.py", "solution.py"]
    assert task.checkpoints.filter(chosen=False).count() == 2
    assert (project.workspace / "deployed" / "part_2.py").exists()
    assert llm.purposes()[:4] == ["split", "part", "part", "integrate"]


def test_hierarchical_mode_on_a_real_worker(worker, llm, project):
    llm.script("split", PARTS)
    both = WORDS[: -len("```")] + "\n\n" + JOIN[len("```python\n") :]  # the parts may finish in any order
    llm.script("part", both)
    llm.script("integrate", INTEGRATED)
    task = wait_for_task(submit_task(project, REQUEST, mode="hierarchical"), timeout=120)
    assert task.status == Task.Status.ACCEPTED, (task.message, list(task.checkpoints.values("files", "test_results")))
    assert task.checkpoints.count() == 3 and task.events.filter(stage="integrate").count() == 1
