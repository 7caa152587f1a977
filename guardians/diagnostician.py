"""The Diagnostician: the root cause of a failed round or a failed step, with its evidence.

`classify_round` and `classify_error` are pure and cheap, so the failure-recovery path decides
with them at once (retry a transient cause, park the rest); the reports they back are written
on the guardians queue. A cause the rules cannot place is put to the model, whose reply must fit
`Report`; a malformed reply is recorded as such and the cause stays `unknown`.
"""

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, Field

from agents import policy, prompts, schemas
from agents.llm import LLMClient, LLMError
from agents.models import Checkpoint
from agents.safety_review import BLOCKED_MARK
from guardians.models import FailureClass, GuardianReport
from memory import recall

TRANSIENT = {FailureClass.SERVER_UNAVAILABLE, FailureClass.TIMEOUT}
LIMIT_CLASSES = {"wall_clock": FailureClass.TIMEOUT, "cpu": FailureClass.TIMEOUT}


class Report(schemas.Structured):
    """The model's diagnosis of a failure the rules could not place."""

    model_config = ConfigDict(extra="forbid")
    failure_class: Literal[tuple(FailureClass.values)]
    evidence: str = Field(max_length=200)


@dataclass
class Diagnosis:
    failure_class: str
    evidence: str

    @property
    def transient(self):
        return self.failure_class in TRANSIENT


def classify_round(checkpoint, run=None) -> Diagnosis:
    """Why a round's code did not pass its verdict tests. `run`: its verdict SandboxRun."""
    error = checkpoint.generation_error
    if error:
        if "not valid Python" in error:
            return Diagnosis(FailureClass.SYNTAX_ERROR, error)
        if "not allowed" in error:
            return Diagnosis(FailureClass.SANDBOX_REFUSED, error)
        return Diagnosis(FailureClass.MODEL_FORMAT, error)
    if run is not None:
        if run.status == "refused" and BLOCKED_MARK in run.stderr:
            return Diagnosis(FailureClass.SAFETY_BLOCKED, run.stderr[:300])
        if run.status in ("refused", "unavailable"):
            return Diagnosis(FailureClass.SANDBOX_REFUSED, run.stderr[:300])
        if run.status == "limit":
            return Diagnosis(LIMIT_CLASSES.get(run.limit, FailureClass.RESOURCE_LIMIT), f"the {run.limit} limit fired")
    failed = [t for t in checkpoint.test_results if t.get("outcome") != "passed"]
    messages = " ".join(t.get("message", "") for t in failed)
    if re.search(r"\b(SyntaxError|IndentationError|TabError)\b", messages):
        return Diagnosis(FailureClass.SYNTAX_ERROR, messages[:300])
    if re.search(r"\b(Timeout|TimeoutError|RecursionError)\b", messages):
        return Diagnosis(FailureClass.TIMEOUT, messages[:300])
    if failed:
        names = ", ".join(t["name"] for t in failed[:5])
        return Diagnosis(FailureClass.WRONG_ANSWER, f"{len(failed)} verdict test(s) failed: {names}: {messages[:200]}")
    return Diagnosis(FailureClass.UNKNOWN, "the round failed, but no test, run or reply shows why")


def classify_error(error: dict) -> Diagnosis:
    """Why a workflow step raised; `error` as agents.signals.error_facts describes the exception."""
    kinds, text = set(error.get("kinds", ())), f"{error.get('type', 'Exception')}: {error.get('text', '')}"[:500]
    if "LLMUnavailable" in kinds:
        timed_out = "Timeout" in text and "Connection" not in text
        return Diagnosis(FailureClass.TIMEOUT if timed_out else FailureClass.SERVER_UNAVAILABLE, text)
    if kinds & {"SoftTimeLimitExceeded", "TimeLimitExceeded"}:
        return Diagnosis(FailureClass.TIMEOUT, f"the step ran past its time limit ({text})")
    if "LLMFormatError" in kinds:
        return Diagnosis(FailureClass.MODEL_FORMAT, text)
    if "SandboxRefused" in kinds:
        return Diagnosis(FailureClass.SANDBOX_REFUSED, text)
    return Diagnosis(FailureClass.UNKNOWN, text)


def ask_model(task, checkpoint, evidence: str, lessons=()) -> Diagnosis:
    """Put an unplaced failure to the model; its reply is data, checked against `Report`."""
    try:
        reply = LLMClient().chat(
            "guardian",
            prompts.diagnostician_messages(task, evidence, lessons),
            purpose="diagnose",
            schema=Report,
            task=task,
            checkpoint=checkpoint,
            memories=recall.records(lessons),
        )
    except LLMError as exc:
        return Diagnosis(FailureClass.UNKNOWN, f"{evidence[:200]} (the model's diagnosis was unusable: {exc})")
    return Diagnosis(reply.data.failure_class, reply.data.evidence)


def report_round(checkpoint_id):
    """One diagnostician report for a round that did not pass; none for a good round."""
    checkpoint = Checkpoint.objects.select_related("task__project").get(pk=checkpoint_id)
    if checkpoint.good:
        return None
    run = checkpoint.runs.filter(purpose="verdict").last()
    diagnosis = classify_round(checkpoint, run)
    query = f"{checkpoint.task.request[:300]}\n{diagnosis.evidence}"
    floor = policy.of(checkpoint.task).lesson_min_similarity
    lessons = recall.recall(checkpoint.task, query, recall.FOR_DIAGNOSTICIAN, min_similarity=floor)
    if diagnosis.failure_class == FailureClass.UNKNOWN:
        diagnosis = ask_model(checkpoint.task, checkpoint, diagnosis.evidence, lessons)
    recommendation = RECOMMENDATIONS.get(diagnosis.failure_class, "")
    if lessons:
        recommendation += (
            f" Memory has a similar case (lesson {lessons[0].entry.pk}): "
            + (lessons[0].entry.metadata.get("resolution", "").splitlines() or [""])[0][:200]
        )
    report, _ = GuardianReport.objects.get_or_create(
        checkpoint=checkpoint,
        guardian=GuardianReport.Guardian.DIAGNOSTICIAN,
        defaults={
            "task": checkpoint.task,
            "severity": GuardianReport.Severity.WARNING,
            "failure_class": diagnosis.failure_class,
            "subject": f"round {checkpoint.round}: {FailureClass(diagnosis.failure_class).label}",
            "findings": {
                "evidence": diagnosis.evidence,
                "tests": f"{checkpoint.tests_passed}/{checkpoint.tests_total}",
                "lessons": recall.records(lessons),
            },
            "recommendation": recommendation.strip(),
        },
    )
    return report


RECOMMENDATIONS = {
    FailureClass.SYNTAX_ERROR: "Repair with the parser's message; keep the reply to one code block.",
    FailureClass.WRONG_ANSWER: "Repair against the failing tests' messages.",
    FailureClass.TIMEOUT: "Look for an unbounded loop or a slower algorithm than the input needs.",
    FailureClass.RESOURCE_LIMIT: "Use less memory, fewer processes or less output.",
    FailureClass.MODEL_FORMAT: "Ask again for exactly one ```python block; lower the temperature.",
    FailureClass.SERVER_UNAVAILABLE: "Check the llama-server; add a backup endpoint (GRYPHGEN_LLM_BACKUP_URLS).",
    FailureClass.SANDBOX_REFUSED: "Check the file names and the host's sandbox (root, nsjail, runtime).",
    FailureClass.SAFETY_BLOCKED: "Remove what the safety monitor named; generated code may not do it.",
}
