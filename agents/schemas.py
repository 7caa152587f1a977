"""The structured replies the roles give, as pydantic models: one definition is both the JSON
schema llama-server constrains the reply with and the type the workflow reads it as.

`Structured.json_schema()` is the plain schema sent to the server (no titles or descriptions, nested models inlined,
so the grammar llama-server builds from it stays small); `agents.llm` validates every reply
against the model and hands the workflow a typed object.
"""

from functools import cache
from typing import Literal

from pydantic import BaseModel, Field, create_model


class Structured(BaseModel):
    @classmethod
    @cache
    def json_schema(cls) -> dict:
        schema = cls.model_json_schema()
        return _plain(schema, schema.get("$defs", {}))


def _plain(node, defs):
    """The schema without titles, descriptions or $defs, every local $ref replaced by what it names."""
    if isinstance(node, list):
        return [_plain(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _plain(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    plain = {key: _plain(value, defs) for key, value in node.items() if key not in ("title", "description", "$defs")}
    if isinstance(node.get("properties"), dict):  # field names are data, never keywords to drop
        plain["properties"] = {name: _plain(value, defs) for name, value in node["properties"].items()}
    return plain


class Issue(BaseModel):
    severity: Literal["error", "warning", "info"]
    message: str = Field(max_length=200)


class AnalyzerReview(Structured):
    """The Code Analyzer's review of a module."""

    issues: list[Issue] = Field(max_length=5)
    summary: str = Field(max_length=300)


class MonitorCase(BaseModel):
    call: str = Field(max_length=200)
    expected: str = Field(max_length=200)


class MonitorTests(Structured):
    """The Task Monitor's verdict tests for a request without examples: calls and expected literals."""

    tests: list[MonitorCase] = Field(min_length=1, max_length=6)


class ProposedInput(BaseModel):
    args: str = Field(max_length=200)


class MonitorInputs(Structured):
    """Inputs the Task Monitor proposes for consensus to probe (inputs only: no expected values)."""

    inputs: list[ProposedInput] = Field(min_length=1, max_length=6)


class MonitorVerdict(Structured):
    """The Task Monitor's verdict on a round: does the module do what was asked?"""

    aligned: bool
    evidence: str = Field(max_length=400)


class Part(BaseModel):
    function: str = Field(max_length=60)
    spec: str = Field(max_length=400)


class LeadSplit(Structured):
    """Hierarchical mode: the lead's split of a request into helper functions."""

    parts: list[Part] = Field(min_length=1, max_length=4)


class Critique(Structured):
    """Debate mode: a critic's points."""

    points: str = Field(max_length=300)


@cache
def decision(allowed: tuple) -> type[Structured]:
    """The Workflow Optimizer's move, one of `allowed`, with its reason."""
    return create_model(
        "Decision", __base__=Structured, decision=(Literal[allowed], ...), reason=(str, Field(max_length=300))
    )


@cache
def vote(numbers: tuple) -> type[Structured]:
    """A judge's vote for one of the candidates `numbers`, with its reason."""
    return create_model("Vote", __base__=Structured, best=(Literal[numbers], ...), reason=(str, Field(max_length=300)))
