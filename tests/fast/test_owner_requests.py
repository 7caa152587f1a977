"""The owner-request suite: its shape, its splits, and that every request names its entry point first.

Pure tests: they read the JSON and parse text; nothing here starts a server or runs a solution.
"""

import ast
import doctest
from collections import Counter

from agents import verdict
from benchmarks import problems, scoring

PROBLEMS = problems.load_owner_requests()
README_SLUGIFY = (
    "Write a function `slugify(text)` that lowercases text, replaces every run of characters that are not "
    "letters or digits with a single hyphen, and strips hyphens from both ends."
)


def test_size_styles_and_shapes():
    suite = list(PROBLEMS.values())
    assert len(suite) >= 32
    styles = Counter(p["style"] for p in suite)
    shapes = Counter(p["shape"] for p in suite)
    assert set(styles) == set(problems.STYLES) and set(shapes) <= set(problems.SHAPES)
    assert styles["examples"] >= 16 and styles["prose"] >= 16
    assert shapes["class"] >= 3 and shapes["two_functions"] >= 3
    assert shapes["function"] > shapes["class"] + shapes["two_functions"]


def test_ids_unique_contiguous_and_keyed():
    ids = list(PROBLEMS)
    assert ids == [f"Owner/{n}" for n in range(len(ids))]
    assert all(PROBLEMS[i]["task_id"] == i for i in ids)
    assert [problems.task_number(i) for i in ids] == list(range(len(ids)))
    keys = {"task_id", "request", "entry_point", "style", "shape", "canonical_solution", "test"}
    assert all(set(p) == keys for p in PROBLEMS.values())


def test_splits_are_balanced():
    """Even task numbers are dev, odd are test: each has as many of every style and shape as the other."""
    dev = Counter((p["style"], p["shape"]) for i, p in PROBLEMS.items() if problems.task_number(i) % 2 == 0)
    test = Counter((p["style"], p["shape"]) for i, p in PROBLEMS.items() if problems.task_number(i) % 2 == 1)
    assert dev == test


def test_prose_requests_have_no_examples():
    for problem in PROBLEMS.values():
        if problem["style"] == "prose":
            assert ">>>" not in problem["request"], problem["task_id"]
            assert verdict.doctest_files(problem["request"]) == {}, problem["task_id"]


def test_example_requests_have_doctests():
    for problem in PROBLEMS.values():
        if problem["style"] == "examples":
            examples = doctest.DocTestParser().get_examples(problem["request"])
            assert len(examples) >= 2, problem["task_id"]
            assert all(example.want for example in examples), problem["task_id"]  # each shows its result
            assert len(verdict.doctest_files(problem["request"])) == len(examples), problem["task_id"]


def test_entry_point_is_the_first_backticked_call():
    for problem in PROBLEMS.values():
        assert verdict.entry_point(problem["request"]) == problem["entry_point"], problem["task_id"]


def test_readme_quickstart_request_is_in_the_suite():
    slugify = [p for p in PROBLEMS.values() if p["request"] == README_SLUGIFY]
    assert len(slugify) == 1 and slugify[0]["style"] == "prose" and slugify[0]["entry_point"] == "slugify"


def _defined(source: str) -> dict:
    """Top-level names a module defines: function or class -> its node."""
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def test_hidden_tests_define_check():
    for problem in PROBLEMS.values():
        check = _defined(problem["test"]).get("check")
        assert isinstance(check, ast.FunctionDef), problem["task_id"]
        assert [a.arg for a in check.args.args] == ["candidate"], problem["task_id"]
        asserts = [n for n in ast.walk(check) if isinstance(n, ast.Assert)]
        assert len(asserts) >= 6, problem["task_id"]


def test_references_define_the_entry_point_in_its_shape():
    for problem in PROBLEMS.values():
        defined = _defined(problem["canonical_solution"])
        node = defined.get(problem["entry_point"])
        wanted = ast.ClassDef if problem["shape"] == "class" else ast.FunctionDef
        assert isinstance(node, wanted), problem["task_id"]
        if problem["shape"] == "two_functions":
            public = [
                name for name, n in defined.items() if isinstance(n, ast.FunctionDef) and not name.startswith("_")
            ]
            assert len(public) == 2 and public[0] == problem["entry_point"], problem["task_id"]
            assert f"from solution import {public[1]}" in problem["test"], problem["task_id"]
            assert f"`{public[1]}(" in problem["request"], problem["task_id"]


def test_score_program():
    problem = PROBLEMS["Owner/0"]
    program = scoring.score_program(problem)
    ast.parse(program)
    lines = program.splitlines()
    assert lines[0].startswith("from solution import *")
    assert lines[1] == "from solution import slugify"
    assert problem["test"] in program
    assert lines[-1] == "check(slugify)"
    for other in PROBLEMS.values():
        ast.parse(scoring.score_program(other))
