"""The policy: every value that shapes how a task is worked, versioned in the database.

A Policy row holds one version of these values: the global line (project None) or a project's
own line. The settings supply only the global version 1, written the first time a task needs
one; after that the improvement cycle (or an operator) writes new versions and moves `live`.
Every Task records the version it ran under, so a result can always be traced to its values.

Endpoints, API keys, sandbox limits and security settings are not policy: no cycle can change them.
"""

from typing import Annotated, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.models import Mode, Policy

Count = Annotated[int, Field(ge=1, le=12)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]


class Values(BaseModel):
    """One version's values; `Values.model_validate` refuses unknown keys, models and bounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal[tuple(Mode.values)] = Field(description="The mode of a project that does not choose one.")
    roster: dict[str, str] = Field(description="Role -> model (a key of settings.GRYPHGEN_MODELS).")
    temperatures: dict[str, Temperature] = Field(description="Role -> temperature of its calls.")
    max_tokens: dict[str, Annotated[int, Field(ge=16, le=4096)]] = Field(description="Role -> answer cap.")
    variant_temperature: Temperature = Field(description="Temperature of samples after the first.")
    generator_prompt: Literal["gryphgen", "qwen"]
    max_rounds: Annotated[int, Field(ge=1, le=10)]
    candidates: Count = Field(description="Parallel candidates per round in competitive and collaborative mode.")
    debate_turns: Annotated[int, Field(ge=1, le=4)]
    max_parts: Annotated[int, Field(ge=1, le=6)]
    consensus_samples: Count
    consensus_escalation_samples: Annotated[int, Field(ge=0, le=8)]
    consensus_min_group: Count
    consensus_accept_group: Count
    consensus_strong_examples: Annotated[int, Field(ge=1, le=10)]
    consensus_inputs: Annotated[int, Field(ge=1, le=50)]
    consensus_set_aside: bool
    budget_tokens: Annotated[int, Field(ge=0)] = Field(description="Per task; 0: unlimited.")
    budget_seconds: Annotated[int, Field(ge=0)] = Field(description="Per task, wall time; 0: unlimited.")
    memory_k: Annotated[int, Field(ge=1, le=10)] = Field(description="Memories per prompt.")
    memory_min_similarity: Share
    lesson_min_similarity: Share
    memory_reuse_match: Annotated[float, Field(ge=0.0, le=2.0)] = Field(description="Above 1: reuse off.")
    memory_prompt_chars: Annotated[int, Field(ge=100, le=10_000)]

    @field_validator("roster")
    @classmethod
    def _known_models(cls, roster):
        missing = sorted(set(settings.ROSTER_ROLES) - set(roster))
        unknown = sorted(set(roster) - set(settings.ROSTER_ROLES))
        if missing or unknown:
            raise ValueError(f"the roster must name each role once ({', '.join(settings.ROSTER_ROLES)})")
        for role, model in roster.items():
            if model not in settings.GRYPHGEN_MODELS:
                raise ValueError(
                    f"the {role} role names the model {model!r}; models: {', '.join(settings.GRYPHGEN_MODELS)}"
                )
        return roster

    @field_validator("temperatures", "max_tokens")
    @classmethod
    def _every_role(cls, values):
        if set(values) != set(settings.GRYPHGEN_ROLES):
            raise ValueError(f"give each role exactly once: {', '.join(settings.GRYPHGEN_ROLES)}")
        return values


class PolicyError(ValueError):
    """Values that are not a valid policy, in words an operator can act on."""


def from_settings() -> Values:
    """The first version: what the settings say (a PolicyError names a setting out of bounds)."""
    roles = settings.GRYPHGEN_ROLES
    values = dict(
        mode=Mode.CONSENSUS,
        roster=dict(settings.GRYPHGEN_ROSTER),
        temperatures={role: params["temperature"] for role, params in roles.items()},
        max_tokens={role: params["max_tokens"] for role, params in roles.items()},
        variant_temperature=settings.GRYPHGEN_VARIANT_TEMPERATURE,
        generator_prompt=settings.GRYPHGEN_GENERATOR_PROMPT,
        max_rounds=settings.GRYPHGEN_MAX_ROUNDS,
        candidates=settings.GRYPHGEN_CANDIDATES,
        debate_turns=settings.GRYPHGEN_DEBATE_TURNS,
        max_parts=settings.GRYPHGEN_MAX_PARTS,
        consensus_samples=settings.GRYPHGEN_CONSENSUS_SAMPLES,
        consensus_escalation_samples=settings.GRYPHGEN_CONSENSUS_ESCALATION_SAMPLES,
        consensus_min_group=settings.GRYPHGEN_CONSENSUS_MIN_GROUP,
        consensus_accept_group=settings.GRYPHGEN_CONSENSUS_ACCEPT_GROUP,
        consensus_strong_examples=settings.GRYPHGEN_CONSENSUS_STRONG_EXAMPLES,
        consensus_inputs=settings.GRYPHGEN_CONSENSUS_INPUTS,
        consensus_set_aside=settings.GRYPHGEN_CONSENSUS_SET_ASIDE,
        budget_tokens=settings.GRYPHGEN_BUDGET_TOKENS,
        budget_seconds=settings.GRYPHGEN_BUDGET_SECONDS,
        memory_k=settings.GRYPHGEN_MEMORY_K,
        memory_min_similarity=settings.GRYPHGEN_MEMORY_MIN_SIMILARITY,
        lesson_min_similarity=settings.GRYPHGEN_LESSON_MIN_SIMILARITY,
        memory_reuse_match=settings.GRYPHGEN_MEMORY_REUSE_MATCH,
        memory_prompt_chars=settings.GRYPHGEN_MEMORY_PROMPT_CHARS,
    )
    return check(values)


def check(values: dict) -> Values:
    """`values` as Values, or a PolicyError naming every field that is wrong."""
    try:
        return Values.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'values'}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"not a valid policy: {problems}") from exc


def changed(values: Values, path: str, value) -> Values:
    """`values` with one value replaced: `path` is a field (`max_rounds`) or a field and a key of a
    per-role map (`temperatures.generator`); a PolicyError for an unknown path or a value out of bounds."""
    field, _, key = path.partition(".")
    data = values.model_dump()
    if field not in data or bool(key) != isinstance(data[field], dict) or (key and key not in data[field]):
        raise PolicyError(f"{path} is not a value of the policy")
    if key:
        data[field][key] = value
    else:
        data[field] = value
    return check(data)


def diff(old: Values, new: Values) -> list:
    """[(path, old value, new value)] for every value that differs, paths as `changed` takes them."""
    before, after = old.model_dump(), new.model_dump()
    changes = []
    for field, value in after.items():
        if isinstance(value, dict):
            changes += [
                (f"{field}.{k}", before[field].get(k), v) for k, v in value.items() if before[field].get(k) != v
            ]
        elif before[field] != value:
            changes.append((field, before[field], value))
    return changes


def live(project=None) -> Policy:
    """The policy a new task of `project` runs under: the project's live version, else the global
    one, which is written from the settings the first time anything asks."""
    if project is not None and project.pk is not None:
        own = Policy.objects.filter(project=project, live=True).first()
        if own is not None:
            return own
    found = Policy.objects.filter(project=None, live=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Policy.objects.create(
                project=None, version=1, values=from_settings().model_dump(), live=True, note="from the settings"
            )
    except IntegrityError:  # another process wrote version 1 first
        return Policy.objects.get(project=None, live=True)


def values_of(policy: Policy) -> Values:
    """A stored version's values, checked (a row edited by hand into nonsense is refused clearly)."""
    cached = getattr(policy, "_checked", None)
    if cached is None:
        try:
            cached = check(policy.values)
        except PolicyError as exc:
            raise PolicyError(f"policy {policy}: {exc}") from exc
        policy._checked = cached
    return cached


def of(task=None) -> Values:
    """The values a task runs under: its recorded version (the global live one for a task that
    has none, e.g. written before versions existed, and for work outside any task)."""
    if task is not None and task.policy_id is not None:
        return values_of(task.policy)
    return values_of(live())


@transaction.atomic
def publish(values: dict, *, project, parent: Policy | None, note: str, go_live: bool = True) -> Policy:
    """Write `values` as the next version of a line (`project`'s own, or the global one for None),
    derived from `parent`; with `go_live`, it replaces the line's live version at once."""
    checked = check(values)
    line = Policy.objects.select_for_update().filter(project=project)
    version = max((p.version for p in line), default=0) + 1
    if go_live:
        line.filter(live=True).update(live=False)
    return Policy.objects.create(
        project=project, version=version, parent=parent, values=checked.model_dump(), live=go_live, note=note[:300]
    )


def follow_settings(project) -> Policy:
    """Make the settings' values `project`'s live policy, with a new version only when they differ
    from it: a benchmark's projects run exactly what its environment says."""
    current = live(project)
    values = from_settings()
    if current.project_id == project.pk and values_of(current) == values:
        return current
    return publish(values.model_dump(), project=project, parent=current, note="the settings of a benchmark run")


@transaction.atomic
def make_live(policy: Policy) -> Policy:
    """Move its line's live flag to `policy` (a rollback is this with an older version)."""
    line = Policy.objects.select_for_update().filter(project=policy.project_id)
    values_of(policy)  # never make an invalid version live
    line.filter(live=True).exclude(pk=policy.pk).update(live=False)
    Policy.objects.filter(pk=policy.pk).update(live=True)
    policy.refresh_from_db()
    return policy
