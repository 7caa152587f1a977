"""Submitting tasks: what views, admin and commands call."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from agents import pysource
from agents.models import ONE_ROUND_MODES, Checkpoint, Mode, Task

MAX_ROUNDS = 10  # also the model's validator: the admin's form and the API agree


def validate_text(value: str, what: str, *, required: bool) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{what} is not UTF-8 text (bad byte at position {exc.start}).") from exc
    if "\x00" in value:
        raise ValidationError(f"{what} contains NUL bytes; send plain text.")
    if required and not value.strip():
        raise ValidationError(f"{what} is empty: describe the code you want.")
    size = len(value.encode("utf-8"))
    if size > settings.GRYPHGEN_MAX_REQUEST_BYTES:
        raise ValidationError(f"{what} is {size:,} bytes; the limit is {settings.GRYPHGEN_MAX_REQUEST_BYTES:,}.")
    return value


def check_positive(value, what):
    if value is not None and (not isinstance(value, int) or value <= 0):
        raise ValidationError(f"{what} must be a positive whole number, not {value!r}.")
    return value


def submit_task(
    project,
    request,
    acceptance_tests="",
    mode=None,
    max_rounds=None,
    *,
    budget_tokens=None,
    budget_seconds=None,
    memory_key="",
    generator_model="",
) -> Task:
    """Validate, create the Task and queue its workflow once the transaction commits.

    Budgets left out take the settings' defaults (0 there means unlimited); given, they must be > 0.
    `generator_model` (a key of settings.GRYPHGEN_MODELS) overrides the roster's generator model.
    """
    from agents import workflows

    mode = mode or project.default_mode
    if mode not in Mode.values:
        raise ValidationError(f"Unknown mode {mode!r}; choose one of: {', '.join(Mode.values)}.")
    for value, what in ((max_rounds, "The number of rounds"), (budget_tokens, "The token budget"),
                        (budget_seconds, "The wall-time budget")):  # fmt: skip
        check_positive(value, what)
    if max_rounds and max_rounds > MAX_ROUNDS:
        raise ValidationError(f"The number of rounds is {max_rounds}; the most a task may run is {MAX_ROUNDS}.")
    if generator_model and generator_model not in settings.GRYPHGEN_MODELS:
        raise ValidationError(
            f"Unknown model {generator_model!r}; choose one of: {', '.join(settings.GRYPHGEN_MODELS)}."
        )
    request = validate_text(request, "The request", required=True)
    acceptance_tests = validate_text(acceptance_tests or "", "The acceptance tests", required=False)
    if acceptance_tests.strip():
        try:
            pysource.parse(acceptance_tests, "test_acceptance.py")
        except SyntaxError as exc:
            raise ValidationError(f"The acceptance tests are not valid Python: line {exc.lineno}: {exc.msg}") from exc
    in_flight = Task.objects.filter(
        project__owner=project.owner, status__in=[Task.Status.QUEUED, Task.Status.RUNNING, Task.Status.HELD]
    ).count()
    if in_flight >= settings.GRYPHGEN_MAX_TASKS_IN_FLIGHT:
        raise ValidationError(
            f"You have {in_flight} tasks queued, running or held (the limit is {settings.GRYPHGEN_MAX_TASKS_IN_FLIGHT}); "
            "wait for some to finish."
        )
    check_fits(request + "\n" + acceptance_tests, generator_model)
    task = Task.objects.create(
        project=project,
        request=request,
        acceptance_tests=acceptance_tests,
        mode=mode,
        max_rounds=1 if mode in ONE_ROUND_MODES else max_rounds or settings.GRYPHGEN_MAX_ROUNDS,
        candidates=settings.GRYPHGEN_CANDIDATES if mode in (Mode.COMPETITIVE, Mode.COLLABORATIVE) else 1,
        budget_tokens=budget_tokens or settings.GRYPHGEN_BUDGET_TOKENS,
        budget_seconds=budget_seconds or settings.GRYPHGEN_BUDGET_SECONDS,
        memory_key=memory_key[:200],
        generator_model=generator_model,
    )
    transaction.on_commit(lambda: workflows.send_start(task))
    return task


def check_fits(text: str, generator_model: str = "") -> None:
    """Refuse, before anything is queued, a request the models cannot read: counted by each roster
    model's own tokenizer. A model whose server does not answer now is not counted (its calls fail
    over and are retried like any other)."""
    from agents.llm import LLMClient

    models = {generator_model or settings.GRYPHGEN_ROSTER["generator"], *settings.GRYPHGEN_ROSTER.values()}
    for model in sorted(models):
        room = LLMClient().request_room(text, model)
        if room is not None and room[0] > room[1]:
            raise ValidationError(
                f"The request and its tests are {room[0]:,} tokens; the {model} model reads at most "
                f"{max(room[1], 0):,} (its context, less room for its answer). Shorten the request."
            )


def review_held(task, user, *, accept: bool) -> bool:
    """The owner's answer to held code: deploy it, or fail the task. False if it was not held."""
    from agents import pipeline, tasks

    if not accept:
        return pipeline.finish(
            task, Task.Status.FAILED, f"The owner ({user}) rejected the held code; nothing was deployed."
        )
    released = Task.objects.filter(pk=task.pk, status=Task.Status.HELD).update(
        status=Task.Status.RUNNING, reviewed_by=user, stage="deploy"
    )
    if released:
        accepted = Checkpoint.objects.get(task=task, chosen=True, decision=Checkpoint.Decision.ACCEPT)
        transaction.on_commit(lambda: tasks.deploy_step.delay(task.pk, accepted.round))
    return bool(released)
