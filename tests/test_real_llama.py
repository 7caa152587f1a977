"""The workflow against real llama-servers: SmolLM2 for bookkeeping, the bundled model end to end.

The models' answers may vary; the bookkeeping may not: every run ends in a terminal status with
its calls, tokens, checkpoints and sandbox runs recorded.
"""

import pytest

from agents.models import AgentCall, Checkpoint, Mode, Project, SandboxRun, Task
from agents.services import submit_task
from tests.conftest import start_worker
from tests.helpers import wait_for_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.llama]

SLUGIFY = """Write `slugify(text: str) -> str` that lowercases, replaces runs of non-alphanumerics with one
hyphen and strips hyphens at both ends.

>>> slugify("Hello, World!")
'hello-world'
>>> slugify("  Many   spaces  ")
'many-spaces'
"""


def assert_bookkeeping(task):
    assert task.is_finished and task.message
    assert task.status in (Task.Status.ACCEPTED, Task.Status.FAILED), task.message
    calls = AgentCall.objects.filter(task=task)
    assert calls.filter(role="generator").count() >= 1
    assert all(c.prompt_tokens > 0 and c.latency_ms > 0 for c in calls.filter(error=""))
    rounds = Checkpoint.objects.filter(task=task, chosen=True)  # the one per round that went on to a decision
    assert rounds.count() >= 1 and all(cp.stage == "decided" for cp in rounds)
    tested = Checkpoint.objects.filter(task=task).exclude(stage="generated")  # not the hierarchical parts
    verdict_runs = SandboxRun.objects.filter(task=task, purpose="verdict")
    assert verdict_runs.count() == tested.count()  # one per tested checkpoint; `refused` where the code was unusable
    assert verdict_runs.filter(status="refused").count() == tested.exclude(generation_error="").count()
    deploys = SandboxRun.objects.filter(task=task, purpose="deploy")
    if task.status == Task.Status.ACCEPTED:
        assert rounds.filter(decision="accept", good=True).exclude(commit_sha="").count() == 1
        assert deploys.get().status == "passed" and task.project.deployments.count() == 1
    else:
        assert not deploys.exists()


@pytest.fixture
def smollm_worker(smollm_url):
    """A worker on SmolLM2, stopped after each test: no other test's task may reach it."""
    with start_worker({"GRYPHGEN_LLM_URL": smollm_url, "GRYPHGEN_DEBATE_TURNS": "1"}):
        yield


@pytest.mark.parametrize("mode", Mode.values)
def test_every_mode_keeps_its_books_on_smollm2(smollm_worker, project, mode, settings):
    settings.GRYPHGEN_CANDIDATES = 2  # read at submit, in this process
    task = wait_for_task(submit_task(project, SLUGIFY, mode=mode, max_rounds=1), timeout=300)
    assert_bookkeeping(task)
    assert task.mode == mode and task.stop_reason
    assert "SmolLM2" in AgentCall.objects.filter(task=task, error="").first().model
    purposes = set(AgentCall.objects.filter(task=task).values_list("purpose", flat=True))
    expected = {"single": {"generate"}, "collaborative": {"generate"}, "competitive": {"generate"},
                "debate": {"generate", "critic"}, "hierarchical": {"split", "part", "integrate"},
                "pipeline": {"generate", "analyze"}}[mode]  # fmt: skip
    assert expected <= purposes, purposes
    if mode in ("competitive", "collaborative"):
        assert Checkpoint.objects.filter(task=task, round=1).count() == 2


def test_repeated_work_is_answered_from_memory_or_else_generated_on_smollm2(smollm_worker, project):
    from agents import prompts
    from memory import embeddings, store
    from memory.models import MemoryEntry

    earlier = Task.objects.create(project=project, request=SLUGIFY, status="accepted", entry_point="slugify")
    code = 'import re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n'
    cp = Checkpoint.objects.create(task=earlier, round=1, files={"solution.py": code}, stage="decided", good=True)
    remembered = store.remember_solution(earlier, cp, prompts.code_block(cp.files))
    assert embeddings.embed_pending() == (1, "")

    request = SLUGIFY.replace("slugify", "make_slug")
    task = wait_for_task(submit_task(project, request, mode=Mode.PIPELINE, max_rounds=1), timeout=300)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert not AgentCall.objects.filter(task=task).exists()  # no model call
    assert task.checkpoints.get().reused == remembered
    assert set(task.sandbox_runs.values_list("purpose", "status")) == {("reuse", "passed"), ("deploy", "passed")}

    # the owner's acceptance tests want digits dropped: the remembered code fails them, SmolLM2 writes new code
    tests = "from solution import make_slug\n\n\ndef test_digits():\n    assert make_slug('a1b') == 'ab'\n"
    other = Project.objects.create(owner=project.owner, name="another of the owner's projects")  # memory is per owner
    task = wait_for_task(submit_task(other, request, acceptance_tests=tests, max_rounds=1), timeout=300)
    assert_bookkeeping(task)
    assert task.sandbox_runs.get(purpose="reuse").status == "failed"
    assert task.checkpoints.get(round=1).reused is None
    assert MemoryEntry.objects.filter(kind="solution").count() == 1 + (task.status == Task.Status.ACCEPTED)


@pytest.mark.bundled
def test_bundled_model_end_to_end(bundled_url, project):
    with start_worker({"GRYPHGEN_LLM_URL": bundled_url, "GRYPHGEN_GENERATOR_TEMPERATURE": "0"}):
        task = wait_for_task(submit_task(project, SLUGIFY, max_rounds=2), timeout=900)
    assert_bookkeeping(task)
    assert "qwen" in AgentCall.objects.filter(task=task, error="").first().model.lower()
