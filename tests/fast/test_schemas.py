"""The roles' structured replies: the schema llama-server gets is plain, and replies are read strictly."""

import pytest

from agents import schemas
from agents.llm import LLMFormatError, parse_structured
from guardians.diagnostician import Report

STRUCTURED = [
    schemas.AnalyzerReview, schemas.MonitorTests, schemas.MonitorInputs, schemas.MonitorVerdict,
    schemas.LeadSplit, schemas.Critique, schemas.decision(("accept", "repair")), schemas.vote((1, 2)), Report,
]  # fmt: skip


def keywords(node):
    """Every key of every schema node, but not the names under `properties` (those are data)."""
    if isinstance(node, list):
        return set().union(*(keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node) - {"properties"}
    for key, value in node.items():
        found |= set().union(*(keywords(v) for v in value.values())) if key == "properties" else keywords(value)
    return found


@pytest.mark.parametrize("model", STRUCTURED, ids=lambda m: m.__name__)
def test_the_schema_sent_is_plain(model):
    schema = model.json_schema()
    assert schema["type"] == "object" and schema["required"]
    assert not keywords(schema) & {"$ref", "$defs", "title", "description"}


@pytest.mark.parametrize(
    "model, reply, where",
    [
        (schemas.MonitorVerdict, '{"aligned": "yes", "evidence": "x"}', "aligned"),
        (schemas.MonitorVerdict, '{"aligned": true}', "evidence"),
        (
            schemas.AnalyzerReview,
            '{"issues": [{"severity": "fatal", "message": "x"}], "summary": ""}',
            "issues/0/severity",
        ),
        (schemas.MonitorTests, '{"tests": []}', "tests"),
        (schemas.Critique, '{"points": "' + "x" * 301 + '"}', "points"),
        (schemas.decision(("accept", "repair")), '{"decision": "give_up", "reason": "x"}', "decision"),
        (Report, '{"failure_class": "timeout", "evidence": "x", "extra": 1}', "extra"),
    ],
)
def test_replies_that_break_the_schema_are_format_errors_that_say_where(model, reply, where):
    with pytest.raises(LLMFormatError, match=f"breaks the schema at {where}:"):
        parse_structured(reply, model)


def test_a_reply_that_fits_is_read_as_its_type():
    reply = parse_structured('{"tests": [{"call": "f(1)", "expected": "2"}]}', schemas.MonitorTests)
    assert reply.tests == [schemas.MonitorCase(call="f(1)", expected="2")]
    with pytest.raises(LLMFormatError, match="not valid JSON"):
        parse_structured("{oops", schemas.MonitorTests)
