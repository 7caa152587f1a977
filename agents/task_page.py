"""What the task page shows beyond the rows themselves: each round's code highlighted, its diff
against the round it repaired (or, for a candidate that lost, against the one chosen), its verdict
tests with their outcome, the guardians' findings about it, and a timeline of the model calls and
sandbox runs with their tokens and seconds. Pygments escapes everything it formats."""

import difflib
from dataclasses import dataclass, field

from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer, TextLexer

FORMATTER = HtmlFormatter(cssclass="code")
STYLE = mark_safe(FORMATTER.get_style_defs(".code"))  # noqa: S308 - our own constant CSS


def highlighted(name: str, source: str) -> str:
    lexer = PythonLexer() if name.endswith(".py") else TextLexer()
    return mark_safe(highlight(source, lexer, FORMATTER))  # noqa: S308 - Pygments escapes the source


def diff(before: dict, after: dict) -> str:
    lines = []
    for name in sorted(set(before) | set(after)):
        lines += difflib.unified_diff(
            before.get(name, "").splitlines(keepends=True), after.get(name, "").splitlines(keepends=True),
            f"a/{name}", f"b/{name}",
        )  # fmt: skip
    return mark_safe(highlight("".join(lines), DiffLexer(), FORMATTER)) if lines else ""  # noqa: S308


@dataclass
class Round:
    checkpoint: object
    files: list  # [(name, highlighted html)]
    diff: str
    against: str  # what the diff compares with, in words
    tests: list
    reports: list = field(default_factory=list)


def rounds(task) -> list:
    checkpoints = list(task.checkpoints.select_related("parent").order_by("round", "candidate"))
    chosen = {cp.round: cp for cp in checkpoints if cp.chosen}
    reports = {}
    for report in task.reports.exclude(checkpoint=None):
        reports.setdefault(report.checkpoint_id, []).append(report)
    result = []
    for cp in checkpoints:
        if not cp.chosen and cp.round in chosen:
            base, against = chosen[cp.round], f"the chosen candidate {chosen[cp.round].candidate + 1}"
        elif cp.parent is not None:
            base, against = cp.parent, f"round {cp.parent.round}, which it repaired"
        else:
            base, against = None, ""
        result.append(
            Round(
                cp,
                [(name, highlighted(name, source)) for name, source in sorted(cp.files.items())],
                diff(base.files, cp.files) if base is not None else "",
                against,
                cp.test_results,
                reports.get(cp.pk, []),
            )  # fmt: skip
        )
    return result


def timeline(task) -> list:
    """[(when, what, detail, tokens, seconds)] of every model call and sandbox run, in order."""
    steps = [
        (
            c.created,
            f"{c.role}: {c.purpose or c.role}",
            c.model or c.endpoint,
            c.prompt_tokens + c.completion_tokens,
            c.latency_ms / 1000,
            c.error,
        )  # fmt: skip
        for c in task.calls.all()
    ]
    steps += [
        (
            r.created,
            f"sandbox: {r.purpose}",
            r.status + (f" ({r.limit} limit)" if r.limit else ""),
            None,
            r.duration_ms / 1000,
            "",
        )  # fmt: skip
        for r in task.sandbox_runs.all()
    ]
    return sorted(steps, key=lambda s: s[0])
