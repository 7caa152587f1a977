"""Celery tasks: thin wrappers that call one pipeline step each.

Transient LLM failures (refused, timed out, 5xx on every endpoint) retry with backoff; each
failed attempt is diagnosed, and a step that fails for good is parked as a dead letter with an
alert (see guardians/recovery.py). A retry that succeeds is remembered as a lesson.
"""

from celery import Task as CeleryTask
from celery import shared_task
from django.conf import settings

from agents import consensus, cooperation, deploy, pipeline
from agents.llm import LLMUnavailable
from guardians import recovery


class WorkflowStep(CeleryTask):
    autoretry_for = (LLMUnavailable,)
    retry_backoff = settings.GRYPHGEN_LLM_RETRY_BACKOFF
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = settings.GRYPHGEN_LLM_RETRIES

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        recovery.step_retrying(self.name, exc, args[0], args, self.request.retries + 1)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        recovery.step_failed(self.name, exc, args[0], args, self.request.chain, self.request.retries + 1)

    def on_success(self, retval, task_id, args, kwargs):
        if self.request.retries:
            recovery.step_recovered(self.name, args[0], self.request.retries + 1)


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


@shared_task(name="agents.tasks.roll_back")
def roll_back(deployment_id: int, user_id: int | None = None):
    """An owner's rollback from the admin: the web queues it, a worker with the workspace moves it."""
    deploy.rollback_by_id(deployment_id, user_id)
