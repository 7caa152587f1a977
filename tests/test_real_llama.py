"""The workflow against real llama-servers: SmolLM2 for bookkeeping, the bundled model end to end.

The models' answers may vary; the bookkeeping may not: every run ends in a terminal status with
its calls, tokens, checkpoints and sandbox runs recorded.
"""

import pytest
from django.conf import settings

from agents import policy
from agents.models import AgentCall, Checkpoint, Mode, Project, SandboxRun, Task
from agents.services import submit_task
from tests.conftest import running_worker
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
        assert task.project.deployments.get().tested_by.status == "passed"
    else:
        assert not deploys.exists()


def greedy(project):
    """The project's own policy: the generator at temperature 0, so a bundled-model test repeats."""
    values = policy.changed(policy.of(), "temperatures.generator", 0.0)
    return policy.publish(values.model_dump(), project=project, parent=policy.live(), note="greedy, for a test")


@pytest.fixture
def smollm_worker(smollm_url, settings):
    """A worker on SmolLM2, stopped after each test: no other test's task may reach it. One debate
    turn: the policy's first version is written from this process's settings at the first submit."""
    settings.GRYPHGEN_DEBATE_TURNS = 1
    with running_worker({"GRYPHGEN_LLM_URL": smollm_url, "GRYPHGEN_LARGE_LLM_URL": smollm_url}):
        yield


@pytest.mark.parametrize("mode", Mode.values)
def test_every_mode_keeps_its_books_on_smollm2(smollm_worker, project, mode, settings):
    settings.GRYPHGEN_CANDIDATES = 2  # read at submit, in this process
    # pipeline gets a second round, so round 1 asks the analyzer (the last round never does)
    rounds = 2 if mode == "pipeline" else 1
    task = wait_for_task(submit_task(project, SLUGIFY, mode=mode, max_rounds=rounds), timeout=600)
    assert_bookkeeping(task)
    assert task.mode == mode and task.stop_reason
    assert "SmolLM2" in AgentCall.objects.filter(task=task, error="").first().model
    purposes = set(AgentCall.objects.filter(task=task).values_list("purpose", flat=True))
    expected = {"single": {"generate"}, "collaborative": {"generate"}, "competitive": {"generate"},
                "debate": {"generate", "critic"}, "hierarchical": {"split", "part", "integrate"},
                "pipeline": {"generate", "analyze"}, "consensus": {"generate"},
                "consensus_one": {"generate"}}[mode]  # fmt: skip
    assert expected <= purposes, purposes
    if mode in ("competitive", "collaborative"):
        assert Checkpoint.objects.filter(task=task, round=1).count() == 2
    if mode in ("consensus", "consensus_one"):
        assert_consensus_bookkeeping(task)


def assert_consensus_bookkeeping(task):
    """Every candidate was tested, at most one probe run per batch, one chosen with its evidence."""
    candidates = Checkpoint.objects.filter(task=task, round=1)
    assert candidates.count() == task.candidates and candidates.filter(chosen=True).count() == 1
    assert all(cp.model for cp in candidates)
    chosen = candidates.get(chosen=True)
    assert chosen.evidence["tests"] == f"{chosen.tests_passed}/{chosen.tests_total}"
    if task.candidates > 1:
        assert SandboxRun.objects.filter(task=task, purpose="probe").count() in (1, 2)
        assert task.probe_inputs is not None
    assert task.escalated == (task.candidates > 1 + settings.GRYPHGEN_CONSENSUS_SAMPLES)


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
    assert set(task.sandbox_runs.values_list("purpose", "status")) == {("reuse", "passed")}
    assert task.checkpoints.get().deployments.get().tested_by.purpose == "reuse"  # the same tree: not run twice

    # the owner's acceptance tests want digits dropped: the remembered code fails them, SmolLM2 writes new code
    tests = "from solution import make_slug\n\n\ndef test_digits():\n    assert make_slug('a1b') == 'ab'\n"
    other = Project.objects.create(owner=project.owner, name="another of the owner's projects", default_mode="pipeline")
    task = wait_for_task(submit_task(other, request, acceptance_tests=tests, max_rounds=1), timeout=300)
    assert_bookkeeping(task)
    assert task.sandbox_runs.get(purpose="reuse").status == "failed"
    assert task.checkpoints.get(round=1).reused is None
    assert MemoryEntry.objects.filter(kind="solution").count() == 1 + (task.status == Task.Status.ACCEPTED)


@pytest.mark.bundled
def test_bundled_model_end_to_end(bundled_url, project):
    greedy(project)
    with running_worker({"GRYPHGEN_LLM_URL": bundled_url}):
        task = wait_for_task(submit_task(project, SLUGIFY, max_rounds=2), timeout=900)
    assert_bookkeeping(task)
    assert "qwen" in AgentCall.objects.filter(task=task, error="").first().model.lower()


def test_an_endpoint_started_with_an_api_key_needs_it_from_the_environment(project, monkeypatch):
    from agents.llm import LLMClient, LLMError
    from gryphgen_site import bundle, stack
    from tests.stack_env import TEST_VAR

    url = f"http://127.0.0.1:{stack.free_port()}"
    server = stack.start_llama(
        url, bundle.smollm2_path(), TEST_VAR / "log", name="llama-keyed", parallel=1, ctx=1024,
        extra_args=("--api-key", "k3y-for-test"),
    )  # fmt: skip
    try:
        messages = [{"role": "user", "content": "Say OK."}]
        monkeypatch.delenv("GRYPHGEN_LLM_API_KEY", raising=False)
        with pytest.raises(LLMError, match="refused the API key; set GRYPHGEN_LLM_API_KEY"):
            LLMClient(endpoints=[url]).chat("guardian", messages, purpose="diagnose")
        monkeypatch.setenv("GRYPHGEN_LLM_API_KEY", "k3y-for-test")
        reply = LLMClient(endpoints=[url]).chat("guardian", messages, purpose="diagnose")
        assert reply.call.completion_tokens > 0
        for call in AgentCall.objects.all():
            assert "k3y" not in repr([call.prompt, call.response, call.error, call.endpoint, call.model])
    finally:
        server.stop()


README_REQUEST = """Write `slugify(text: str) -> str` that lowercases, replaces runs of non-alphanumerics with
one hyphen and strips hyphens at both ends.

>>> slugify("Hello, World!")
'hello-world'
"""
HIDDEN_SLUGIFY = """from solution import slugify

cases = {"Hello, World!": "hello-world", "  Many   spaces  ": "many-spaces", "a--b": "a-b", "": "",
         "---": "", "ABC def": "abc-def", "x": "x", "Tab\there": "tab-here", "9 lives!": "9-lives"}
for text, want in cases.items():
    assert slugify(text) == want, (text, slugify(text), want)
"""


@pytest.mark.bundled
def test_the_readme_request_is_deployed_right_in_the_default_mode_through_both_bundled_models(
    bundled_url, large_url, project
):
    from agents import sandbox

    project = Project.objects.create(owner=project.owner, name="as a new owner makes it")
    assert project.default_mode == "" and policy.of().mode == Mode.CONSENSUS  # the policy's mode
    greedy(project)
    with running_worker({"GRYPHGEN_LLM_URL": bundled_url, "GRYPHGEN_LARGE_LLM_URL": large_url}):
        task = wait_for_task(submit_task(project, README_REQUEST), timeout=900)
    assert task.status == Task.Status.ACCEPTED, task.message
    assert_consensus_bookkeeping(task)
    models = set(AgentCall.objects.filter(task=task, role="generator", error="").values_list("model", flat=True))
    assert any("0.5b" in m.lower() for m in models) and any("1.5b" in m.lower() for m in models), models
    deployed = {"solution.py": (project.workspace / "deployed" / "solution.py").read_text()}
    result = sandbox.run({**deployed, "hidden.py": HIDDEN_SLUGIFY}, [f"{sandbox.JAIL_RUNTIME}/bin/python", "hidden.py"])
    assert result.status == "passed", result.stderr[-500:]


def test_a_request_longer_than_the_models_context_is_refused_before_it_is_queued(smollm_url, project, settings):
    """Counted by the server's own tokenizer at submit: a form error, not a dead letter."""
    from django.core.exceptions import ValidationError

    from tests.helpers import point_model_at

    for model in settings.GRYPHGEN_MODELS:
        point_model_at(settings, model, [smollm_url])
    long_request = SLUGIFY + "\n".join(f"Note {i}: the hyphen rule holds for input number {i}." for i in range(200))
    with pytest.raises(ValidationError, match=r"tokens; the \w+ model reads at most"):
        submit_task(project, long_request, mode=Mode.SINGLE)
    assert not Task.objects.exists()
    task = submit_task(project, SLUGIFY, mode=Mode.SINGLE)  # an ordinary request fits
    assert task.status == Task.Status.QUEUED
