"""Owner requests: a benchmark of everyday programming requests, written as a project owner writes them.

HumanEval hands the model a signature and a docstring to complete; owners write a sentence or a
paragraph instead. The 32 problems in `data/owner_requests.json` are such requests: string
utilities, parsing, dates, collections, numbers, validation, text formatting and small algorithms,
mostly single functions, with four classes and four pairs of cooperating functions. Each request
names its entry point first, in backticks with its call shape (`slugify(text)`, a class
`LRUCache(capacity)`, the first of two functions), which is what `agents.verdict.entry_point`
finds. Half of them carry `>>>` examples, each a self-contained line because every example
becomes a verdict test of its own; the other half are prose only, so their verdict tests come from
the Task Monitor.

Every problem has a reference module (`canonical_solution`) and a hidden test (`test`, defining
`check(candidate)`; for a class `candidate` is the class, and a pair's test imports the second
function from `solution` itself). Even task numbers are the dev split and odd ones the test split;
both halves have eight requests of each style and the same mix of shapes.

Nothing here imports Django: the module reads the data and writes the scoring script, which runs
beside the module under test, `solution.py`.
"""

import json
from pathlib import Path

DATA = Path(__file__).parent / "data" / "owner_requests.json"
STYLES = ("examples", "prose")
SHAPES = ("function", "class", "two_functions")


def load_problems() -> dict:
    """Task id ("Owner/N") -> problem dict, in task-number order."""
    problems = json.loads(DATA.read_text(encoding="utf-8"))
    return {problem["task_id"]: problem for problem in sorted(problems, key=lambda p: task_number(p["task_id"]))}


def task_number(problem_id: str) -> int:
    return int(problem_id.split("/", 1)[1])


def score_program(problem: dict) -> str:
    """The scoring script: the module under test, then the hidden test, then `check` on the entry point."""
    entry = problem["entry_point"]
    return (
        "from solution import *  # noqa: F403  (the hidden test may call the solution's other names)\n"
        f"from solution import {entry}\n\n"
        f"{problem['test']}\n\n"
        f"check({entry})\n"
    )
