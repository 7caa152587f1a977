"""Benchmark results in docs/benchmarks.md: one named section per benchmark, and the HumanEval table.

No Django imports: the bench/ scripts import this before their settings exist.
"""

import shutil
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(name: str, body: str) -> None:
    """Put `body` between `<!-- name:start -->` and `<!-- name:end -->`, appending it the first time."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


# --- the HumanEval table (`manage.py gryphgen bench humaneval`) -----------------------------------


def _ci(values) -> str:
    return f"{values[0]:.2f} to {values[1]:.2f}" if values else "n/a"


def table_rows(modes: dict) -> list:
    rows = []
    for mode, m in modes.items():
        vs = m.get("vs_single")
        wrong = m.get("accepted_wrong_share")
        by_model = m.get("tokens_per_problem_by_model") or {}
        rows.append([
            mode + (" (partial)" if m["partial"] else ""),
            f"{m['passed']}/{m['done']}",
            f"{m['pass_at_1']:.2f} ({_ci(m['ci95'])})" if m["pass_at_1"] is not None else "n/a",
            f"{vs['difference']:+.2f} ({_ci(vs['ci95'])}, {vs['problems']} paired)" if vs else "—",
            f"{m.get('best_code', m['passed'])}/{m['done']}",
            f"{m['seconds_per_problem']} ({m.get('busy_seconds_per_problem', 'n/a')})"
            if m["seconds_per_problem"] is not None
            else "n/a",
            ", ".join(f"{name} {count}" for name, count in by_size(by_model).items()) or "n/a",
            f"{m['escalated_share']:.0%}" if m.get("escalated_share") is not None else "n/a",
            f"{m['accepted_wrong']}/{m['accepted']} ({wrong:.0%})" if wrong is not None else "0/0",
        ])  # fmt: skip
    return rows


def by_size(by_model: dict) -> dict:
    """Tokens per short model name: a model recorded under two names (the request's model name, the
    served file's) is one model."""
    merged = {}
    for name, count in by_model.items():
        size = short_model(name)
        merged[size] = merged.get(size, 0) + count
    return merged


def short_model(name: str) -> str:
    """`qwen2.5-coder-1.5b-instruct-q4_k_m.gguf` -> `1.5b`: the size is what tells them apart."""
    for part in name.lower().replace("_", "-").split("-"):
        if part[:1].isdigit() and part.endswith(("b", "m")):
            return part
    return name


HEADINGS = [
    "mode", "solved", "pass@1 (95% CI)", "Δ pass@1 vs single (95% CI)", "best code", "s / problem (busy)",
    "tokens / problem by model", "escalated", "accepted but wrong",
]  # fmt: skip


def table(modes: dict) -> str:
    lines = ["| " + " | ".join(HEADINGS) + " |", "|" + "---|" * len(HEADINGS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(modes)]
    return "\n".join(lines)


def write_humaneval_section(summary: dict, picture: Path, name: str) -> None:
    """The run's own section of docs/benchmarks.md (`humaneval-<run name>`), with its plot."""
    image = DOC.parent / f"humaneval-{name}.png"
    shutil.copyfile(picture, image)
    s = summary["settings"]
    budgets = ", ".join(f"{k.split('_')[1]} budget {s[k]}" for k in ("budget_tokens", "budget_seconds") if s[k])
    partial = (
        f"\n**Partial:** not every selected problem finished ({summary['stopped'] or 'stopped early'}); "
        "the table covers the problems that did.\n"
        if summary["partial"]
        else ""
    )
    suite = "owner requests" if summary["benchmark"] == "owner" else "HumanEval"
    write_section(
        f"humaneval-{name}",
        f"""## {suite}, `{name}` (`manage.py gryphgen bench humaneval`)

{summary["date"]}, {summary["machine"]}, models `{summary["model"]}`; split `{summary["split"]}`,
{summary["problems"]} problems, concurrency {summary["concurrency"]}, at most {summary["max_rounds"]} rounds per task
(single and consensus: 1){", " + budgets if budgets else ""}. Command: `{summary["command"]}`.
{partial}
{table(summary["modes"])}

![{suite}: pass@1 by mode, and pass@1 against seconds per problem]({image.name})

Each problem ran as a real task (Celery, PostgreSQL, llama-server, sandbox) in a benchmark
project of its own. The request's examples (or the Task Monitor's tests) were the verdict tests;
the hidden check ran only afterwards, in a scoring sandbox run, so nothing of it reached an agent.
**Solved** counts a task only when it was accepted (deployed) and its code passes the hidden
check; **best code** counts the final code of every task, accepted or not. Δ is the paired
difference against `single` (the small model) on the same problems (10,000 bootstrap resamples
of the problems, fixed seed). Seconds per problem: mean task wall time, start to finish, with
{summary["concurrency"]} tasks sharing the machine; in brackets the busy seconds, the task's own
model-call and sandbox time, which leaves out time spent queued behind other tasks. **Accepted but wrong**: accepted by the verdict
tests, failed by the hidden check, over all accepted. Memory: {"on" if s["memory"] else "off"}.
""",
    )
