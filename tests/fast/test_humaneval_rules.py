"""The HumanEval harness's pure parts: splits, requests built from prompts, the paired statistics."""

import pytest

from agents import verdict
from benchmarks import BenchmarkError, problems, statistics, task_request

PROBLEMS = problems.load_humaneval()
FIRST, SECOND = "HumanEval/0", "HumanEval/2"  # the dev split's first two


def test_splits_are_even_and_odd_task_numbers():
    dev, test = problems.select(PROBLEMS, "dev"), problems.select(PROBLEMS, "test")
    assert len(dev) == len(test) == 82 and len(problems.select(PROBLEMS, "all")) == 164
    assert dev[:2] == [FIRST, SECOND] and problems.select(PROBLEMS, "test", 3) == ["HumanEval/1", "HumanEval/3",
                                                                                  "HumanEval/5"]  # fmt: skip
    with pytest.raises(BenchmarkError, match="more than the 82 problems"):
        problems.select(PROBLEMS, "test", 83)


def test_docstring_examples_become_doctest_verdict_tests_without_the_closing_quotes():
    request, count = task_request.build_request(PROBLEMS[FIRST])
    files = verdict.doctest_files(request)
    assert count == len(files) == 2 and verdict.entry_point(request) == "has_close_elements"
    assert files["test_example_02.txt"].endswith("has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\nTrue\n")
    assert request.count(">>>") == 2  # taken out of the docstring, listed once below it


def test_prose_examples_are_converted_and_routing_names_the_entry_point():
    request, count = task_request.build_request(PROBLEMS["HumanEval/72"])  # `will_it_fly([1, 2], 5) ➞ False`
    assert count == 4 and ">>> will_it_fly([1, 2], 5)\nFalse\n" in request
    request, _ = task_request.build_request(PROBLEMS["HumanEval/32"])  # defines `poly` before `find_zero`
    assert verdict.entry_point(request) == "find_zero"
    files = verdict.doctest_files(request)
    assert files["test_example_01.txt"].endswith(">>> round(find_zero([1, 2]), 2)\n-0.5\n")  # no comment, no `"""`
    request, _ = task_request.build_request(PROBLEMS["HumanEval/65"])  # `circular_shift(12, 2)` gives `"12"`
    assert ">>> circular_shift(12, 2) == '12'\nTrue\n" in request  # compared, not printed: quotes differ


def test_paired_bootstrap_is_seeded_and_paired():
    rows = {f"p{i}": {"pass": i < 6} for i in range(10)}
    baseline = {f"p{i}": {"pass": i < 3} for i in range(10)}
    first = statistics.paired_bootstrap(rows, baseline, list(rows))
    assert first == statistics.paired_bootstrap(rows, baseline, list(rows))
    assert first["difference"] == 0.3 and first["problems"] == 10 and 0 <= first["ci95"][0] < 0.3 < first["ci95"][1]
