"""The workflow against real llama-servers: SmolLM2 for bookkeeping, the bundled model end to end.

The models' answers may vary; the bookkeeping may not: every run ends in a terminal status with
its calls, tokens, checkpoints and sandbox runs recorded.
"""

import pytest

from agents.models import AgentCall, Checkpoint, SandboxRun, Task
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
    rounds = Checkpoint.objects.filter(task=task)
    assert rounds.count() >= 1 and all(cp.stage == "decided" for cp in rounds)
    verdict_runs = SandboxRun.objects.filter(task=task, purpose="verdict")
    assert verdict_runs.count() == rounds.count()  # one per round; `refused` where the code was unusable
    assert verdict_runs.filter(status="refused").count() == rounds.exclude(generation_error="").count()
    deploys = SandboxRun.objects.filter(task=task, purpose="deploy")
    if task.status == Task.Status.ACCEPTED:
        assert rounds.filter(decision="accept", good=True).exclude(commit_sha="").count() == 1
        assert deploys.get().status == "passed" and task.project.deployments.count() == 1
    else:
        assert not deploys.exists()


def test_smollm2_through_a_real_worker(smollm_url, project):
    with start_worker({"GRYPHGEN_LLM_URL": smollm_url, "GRYPHGEN_MAX_ROUNDS": "2"}):
        task = wait_for_task(submit_task(project, SLUGIFY, max_rounds=2), timeout=300)
    assert_bookkeeping(task)
    assert "SmolLM2" in AgentCall.objects.filter(task=task, error="").first().model


@pytest.mark.bundled
def test_bundled_model_end_to_end(bundled_url, project):
    with start_worker({"GRYPHGEN_LLM_URL": bundled_url, "GRYPHGEN_GENERATOR_TEMPERATURE": "0"}):
        task = wait_for_task(submit_task(project, SLUGIFY, max_rounds=2), timeout=900)
    assert_bookkeeping(task)
    assert "qwen" in AgentCall.objects.filter(task=task, error="").first().model.lower()
