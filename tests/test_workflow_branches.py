"""Each decision branch of request processing, driven by the scripted LLM server (eager canvas)."""

import pytest

from agents.models import AgentCall, Checkpoint, SandboxRun, Task
from agents.services import submit_task
from guardians.models import GuardianReport
from memory.models import MemoryEntry

pytestmark = pytest.mark.django_db(transaction=True)

REQUEST = """Write `slugify(text: str) -> str` that lowercases, replaces runs of non-alphanumerics with one
hyphen and strips hyphens at both ends.

>>> slugify("Hello, World!")
'hello-world'
>>> slugify("  A  b ")
'a-b'
>>> slugify("x")
'x'
"""
GOOD = (
    '```python\nimport re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n```'
)
HALF = "```python\ndef slugify(text):\n    return text.lower().strip()\n```"  # passes only the "x" example
BAD = "```python\ndef slugify(text):\n    return None\n```"


def run(project, **kwargs):
    task = submit_task(project, REQUEST, **kwargs)
    task.refresh_from_db()
    return task


def test_accept_in_one_round(eager, llm, project):
    llm.script("generate", GOOD)
    task = run(project)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.verdict_source == "doctest" and len(task.verdict_tests) == 3
    cp = task.checkpoints.get()
    assert (cp.tests_passed, cp.tests_total, cp.good, cp.decision) == (3, 3, True, "accept")
    assert len(cp.commit_sha) == 40
    assert (project.workspace / "deployed" / "solution.py").read_text().startswith("import re")
    deployment = project.deployments.get()
    assert (deployment.checkpoint_id, deployment.commit_sha, deployment.kind) == (cp.pk, cp.commit_sha, "deploy")
    assert llm.purposes() == ["generate", "analyze", "monitor_verdict", "decide"]
    calls = AgentCall.objects.filter(task=task)
    assert calls.count() == 4 and all(c.prompt_tokens > 0 and c.checkpoint_id == cp.pk for c in calls)
    runs = SandboxRun.objects.filter(task=task)
    assert list(runs.values_list("purpose", "status")) == [("verdict", "passed")]
    assert deployment.tested_by == runs.get()  # the deployed tree is the tested one: its pass stands
    assert GuardianReport.objects.get(task=task, guardian="watcher").findings["tests"] == "3/3"
    assert MemoryEntry.objects.get(task=task).kind == "solution"
    stages = list(task.events.values_list("stage", flat=True))
    assert stages[0] == "route" and stages[-1] == "done"
    assert {"plan", "generate", "analyze", "execute", "monitor", "decide", "deploy"} <= set(stages)


def test_the_last_round_asks_no_one_whose_answer_cannot_change_the_decision(eager, llm, project):
    """The analyzer's review and the monitor's verdict are read only by the optimizer, which is not
    asked when one move is allowed: in the last round, accept if the tests pass."""
    llm.script("generate", GOOD)
    task = run(project, max_rounds=1)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert llm.purposes() == ["generate"]
    cp = task.checkpoints.get()
    assert (cp.decision, cp.reason) == ("accept", "the only allowed move")
    assert cp.verdict["evidence"].startswith("not asked") and cp.verdict["aligned"] is True
    assert {"analyze", "monitor", "decide", "deploy"} <= set(task.events.values_list("stage", flat=True))


def test_repair_then_accept(eager, llm, project):
    llm.script("generate", BAD, GOOD)
    llm.script("decide", {"decision": "accept", "reason": "ok"})  # round 1 may only repair: no call
    task = run(project)
    assert task.status == Task.Status.ACCEPTED, task.message
    first, second = task.checkpoints.order_by("round")
    assert (first.decision, first.tests_passed, first.repair_from_id) == ("repair", 0, first.pk)
    assert second.parent_id == first.pk and second.good
    repair_prompt = [r for r in llm.requests if r["purpose"] == "generate"][1]["body"]["messages"][1]["content"]
    assert "return None" in repair_prompt and "test_example_01" in repair_prompt


def test_revert_to_best_checkpoint(eager, llm, project):
    llm.script("generate", HALF, BAD, GOOD)
    llm.script("decide", {"decision": "revert", "reason": "round 2 got worse"})
    task = run(project, max_rounds=3)
    assert task.status == Task.Status.ACCEPTED, task.message
    r1, r2, r3 = task.checkpoints.order_by("round")
    assert (r1.tests_passed, r2.tests_passed, r3.tests_passed) == (1, 0, 3)
    assert r2.decision == "revert" and r2.repair_from_id == r1.pk
    assert r3.parent_id == r1.pk  # repaired from the best checkpoint, not the latest
    # the optimizer was offered revert only when an earlier checkpoint beat the current one
    offered = [r["body"]["response_format"]["json_schema"]["schema"]["properties"]["decision"]["enum"]
               for r in llm.requests if r["purpose"] == "decide"]  # fmt: skip
    assert offered == [["revert", "repair", "give_up"]]  # round 1 could only repair; round 3 only accept


def test_give_up(eager, llm, project):
    llm.script("generate", BAD)
    llm.script("decide", {"decision": "give_up", "reason": "hopeless"})
    task = run(project, max_rounds=3)
    assert task.status == Task.Status.FAILED
    assert "hopeless" in task.message and task.checkpoints.count() == 2 and task.stop_reason == "gave_up"
    offered = [r["body"]["response_format"]["json_schema"]["schema"]["properties"]["decision"]["enum"]
               for r in llm.requests if r["purpose"] == "decide"]  # fmt: skip
    assert offered == [["repair", "give_up"]]  # no give-up before one repair was tried
    assert not task.checkpoints.filter(commit_sha__gt="").exists()


def test_rounds_run_out(eager, llm, project):
    llm.script("generate", BAD)
    llm.script("decide", {"decision": "repair", "reason": "try again"})
    task = run(project, max_rounds=2)
    assert task.status == Task.Status.FAILED
    assert task.checkpoints.count() == 2 and "Stopped after 2 round(s) (rounds ran out)" in task.message
    assert task.stop_reason == "rounds"
    assert llm.purposes().count("decide") == 0  # round 1 may only repair, the last only give up


def test_reply_without_code_block_is_repaired(eager, llm, project):
    llm.script("generate", "Sure! Here is how you could do it, in words only.", GOOD)
    llm.script("decide", {"decision": "accept", "reason": "ok"})
    task = run(project)
    assert task.status == Task.Status.ACCEPTED
    first = task.checkpoints.get(round=1)
    assert "no ```python code block" in first.generation_error and first.files == {}
    assert first.runs.get().status == "refused"


def test_optimizer_breaking_schema_falls_back_to_default(eager, llm, project):
    llm.script("generate", GOOD)
    llm.script("decide", "{not json")
    task = run(project)
    assert task.status == Task.Status.ACCEPTED
    cp = task.checkpoints.get()
    assert "optimizer reply unusable" in cp.reason and "not valid JSON" in cp.reason
    assert AgentCall.objects.get(task=task, purpose="decide").error.startswith("model reply is not valid JSON")


def test_monitor_writes_tests_when_request_has_none(eager, llm, project):
    llm.script("monitor_tests", {"tests": [{"call": "add(2, 3)", "expected": "5"}, {"call": "add(", "expected": "1"}]})
    llm.script("generate", "```python\ndef add(a, b):\n    return a + b\n```")
    task = submit_task(project, "Write `add(a, b)` returning the sum.")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    assert task.verdict_source == "monitor"
    assert task.verdict_tests["test_monitor.py"].count("def test_case_") == 1  # the unparsable case is dropped


def test_monitor_invalid_json_fails_task_clearly(eager, llm, project):
    llm.script("monitor_tests", "this is not json")
    task = submit_task(project, "Write `add(a, b)` returning the sum.")
    task.refresh_from_db()
    assert task.status == Task.Status.FAILED
    assert "could not write verdict tests" in task.message and "not valid JSON" in task.message
    assert not Checkpoint.objects.filter(task=task).exists()


def test_acceptance_tests_take_precedence(eager, llm, project):
    llm.script("generate", GOOD)
    tests = "from solution import slugify\n\ndef test_one():\n    assert slugify('A B') == 'a-b'\n"
    task = run(project, acceptance_tests=tests)
    assert task.status == Task.Status.ACCEPTED
    assert task.verdict_source == "acceptance" and list(task.verdict_tests) == ["test_acceptance.py"]


def test_a_sandbox_that_cannot_isolate_ends_the_task_with_the_reason(eager, llm, project, settings, tmp_path):
    settings.GRYPHGEN_NSJAIL = str(tmp_path / "missing-nsjail")
    llm.script("generate", GOOD)
    task = run(project)
    assert task.status == Task.Status.ERROR
    assert "sandbox could not run the code" in task.message and "missing-nsjail" in task.message
    run_row = SandboxRun.objects.get(task=task)
    assert (run_row.status, run_row.exit_code) == ("unavailable", None)
    assert not project.deployments.exists() and llm.purposes() == ["generate", "analyze"]


def test_the_qwen_generator_prompt_prefills_the_fence_and_the_code_still_parses(eager, llm, project, settings):
    """GRYPHGEN_GENERATOR_PROMPT=qwen: the model's own system prompt and lead-in, the reply opened
    with a fence; a reply that continues the prefill (no fence of its own) is still a module."""
    from agents import prompts

    settings.GRYPHGEN_GENERATOR_PROMPT = "qwen"
    llm.script("generate", GOOD.removeprefix("```python\n"))  # the model continues after the prefilled fence
    task = submit_task(project, REQUEST, mode="single")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    messages = AgentCall.objects.get(task=task, role="generator").prompt
    assert messages[0]["content"].startswith("You are Qwen") and messages[1]["content"].startswith(prompts.QWEN_LEAD)
    assert messages[-1] == {"role": "assistant", "content": prompts.REPLY_FENCE}
