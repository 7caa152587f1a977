"""Celery tasks: thin wrappers that call one pipeline step each.

Transient LLM failures (refused, timed out, 5xx on every endpoint) retry with backoff; each
retry, and a retry that succeeds, is announced (agents.signals) for the recovery guardian to
record. A step that fails for good hands off to the recovery workflow (agents.workflows).
"""

from celery import Task as CeleryTask
from celery import shared_task
from django.conf import settings

from agents import consensus, cooperation, deploy, kernel, pipeline
from agents.llm import LLMUnavailable
from agents.models import StopReason, Task
from agents.signals import announce, error_facts, step_recovered, step_retrying


class WorkflowStep(CeleryTask):
    autoretry_for = (LLMUnavailable,)
    retry_backoff = settings.GRYPHGEN_LLM_RETRY_BACKOFF
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = settings.GRYPHGEN_LLM_RETRIES

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        announce(step_retrying, self.name, step=self.name, task_id=args[0], args=list(args),
                 attempt=self.request.retries + 1, error=error_facts(exc))  # fmt: skip

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        from agents import workflows

        workflows.recover(self.name, list(args), self.request.chain or [], self.request.retries + 1, error_facts(exc))

    def on_success(self, retval, task_id, args, kwargs):
        if self.request.retries:
            announce(step_recovered, self.name, step=self.name, task_id=args[0], attempts=self.request.retries + 1)


def step(fn):
    return shared_task(base=WorkflowStep, name=f"agents.tasks.{fn.__name__}_step")(fn)


route_step = step(pipeline.route)
plan_tests_step = step(pipeline.plan_tests)
answer_from_memory_step = step(pipeline.answer_from_memory)
generate_step = step(pipeline.generate)
analyze_step = step(pipeline.analyze)
execute_step = step(pipeline.execute)
choose_step = step(pipeline.choose)
monitor_step = step(pipeline.monitor)
decide_step = step(pipeline.decide)
deploy_step = step(pipeline.deploy)
split_step = step(cooperation.split)
generate_part_step = step(cooperation.generate_part)
integrate_step = step(cooperation.integrate)
judge_step = step(consensus.judge)
plan_inputs_step = step(consensus.plan_inputs)


@shared_task(name="agents.tasks.end_in_error")
def end_in_error(message: str, task_id: int):
    """The recovery workflow's last step: the task ends needing attention, saying why."""
    task = kernel.load_running(task_id)
    if task is not None:
        kernel.finish(task, Task.Status.ERROR, f"Needs attention: {message}"[:2000], StopReason.ERROR)


@shared_task(name="agents.tasks.roll_back")
def roll_back(deployment_id: int, user_id: int | None = None):
    """An owner's rollback from the admin: the web queues it, a worker with the workspace moves it."""
    deploy.rollback_by_id(deployment_id, user_id)
