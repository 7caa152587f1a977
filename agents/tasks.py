"""Celery tasks: thin wrappers that call one pipeline step each.

Transient LLM failures (refused, timed out, 5xx on every endpoint) retry with backoff; anything
else, or retries running out, ends the task with a clear message via `on_failure`.
"""

from celery import Task as CeleryTask
from celery import shared_task
from django.conf import settings

from agents import cooperation, pipeline
from agents.llm import LLMUnavailable


class WorkflowStep(CeleryTask):
    autoretry_for = (LLMUnavailable,)
    retry_backoff = settings.GRYPHGEN_LLM_RETRY_BACKOFF
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = settings.GRYPHGEN_LLM_RETRIES

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        from agents.services import fail_task

        fail_task(args[0], exc)


def step(fn):
    return shared_task(base=WorkflowStep, name=f"agents.tasks.{fn.__name__}_step")(fn)


route_step = step(pipeline.route)
plan_tests_step = step(pipeline.plan_tests)
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
