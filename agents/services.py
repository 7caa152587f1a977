"""Submitting tasks: what views, admin and commands call."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from agents import kernel, pysource
from agents.models import ONE_ROUND_MODES, Checkpoint, Mode, StopReason, Task

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
    under=None,
) -> Task:
    """Validate, create the Task and queue its workflow once the transaction commits.

    The task runs under the project's live policy (agents.policy): rounds, candidates, budgets and
    the mode of a project that names none come from it. Budgets given must be > 0 (0 in the policy
    means unlimited). `generator_model` (a key of settings.GRYPHGEN_MODELS) overrides the roster's.
    `under`: another Policy version to run under (the improvement cycle's trials).
    """
    from agents import policy as policies
    from agents import workflows

    policy = under or policies.live(project)
    values = policies.values_of(policy)
    mode = mode or project.default_mode or values.mode
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
    models = {generator_model or values.roster["generator"], *values.roster.values()}
    check_fits(request + "\n" + acceptance_tests, models, values.max_tokens["generator"])
    task = Task.objects.create(
        project=project,
        request=request,
        acceptance_tests=acceptance_tests,
        mode=mode,
        max_rounds=1 if mode in ONE_ROUND_MODES else max_rounds or values.max_rounds,
        candidates=values.candidates if mode in (Mode.COMPETITIVE, Mode.COLLABORATIVE) else 1,
        budget_tokens=budget_tokens or values.budget_tokens,
        budget_seconds=budget_seconds or values.budget_seconds,
        memory_key=memory_key[:200],
        generator_model=generator_model,
        policy=policy,
    )
    transaction.on_commit(lambda: workflows.send_start(task))
    return task


def check_fits(text: str, models: set, answer_tokens: int) -> None:
    """Refuse, before anything is queued, a request the models cannot read: counted by each
    model's own tokenizer. A model whose server does not answer now is not counted (its calls fail
    over and are retried like any other)."""
    from agents.llm import LLMClient

    for model in sorted(models):
        room = LLMClient().request_room(text, model, answer_tokens)
        if room is not None and room[0] > room[1]:
            raise ValidationError(
                f"The request and its tests are {room[0]:,} tokens; the {model} model reads at most "
                f"{max(room[1], 0):,} (its context, less room for its answer). Shorten the request."
            )


def cancel_task(task, user) -> bool:
    """Stop a queued, running or held task: its remaining steps find it finished and do nothing;
    nothing more is deployed. False if it had already ended."""
    return kernel.finish(
        task, Task.Status.FAILED, f"Cancelled by {user}: no further step runs and nothing more is deployed.",
        StopReason.CANCELLED,
    )  # fmt: skip


def retry_task(task, *, request=None, mode=None) -> Task:
    """A new task for the same project: the same request and acceptance tests unless given, the
    same mode unless another is chosen (the live policy's values, as any new task)."""
    return submit_task(task.project, request or task.request, task.acceptance_tests, mode=mode or task.mode)


def review_held(task, user, *, accept: bool) -> bool:
    """The owner's answer to held code: deploy it, or fail the task. False if it was not held."""
    from agents import tasks

    if not accept:
        return kernel.finish(
            task, Task.Status.FAILED, f"The owner ({user}) rejected the held code; nothing was deployed."
        )
    released = Task.objects.filter(pk=task.pk, status=Task.Status.HELD).update(
        status=Task.Status.RUNNING, reviewed_by=user, stage=Task.Stage.DEPLOY
    )
    if released:
        accepted = Checkpoint.objects.get(task=task, chosen=True, decision=Checkpoint.Decision.ACCEPT)
        transaction.on_commit(lambda: tasks.deploy_step.delay(task.pk, accepted.round))
    return bool(released)
