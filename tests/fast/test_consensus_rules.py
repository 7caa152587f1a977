"""Consensus's rules without servers: the vote, the extra inputs, the monitor's cases, reply parsing."""

import pytest

from agents import behaviour, consensus, replies, verdict
from agents.consensus import Ballot
from agents.schemas import MonitorCase, ProposedInput
from gryphgen_site.settings import roster


def ballot(number, passed=3, outputs=("= 1",), total=3, escalated=False, error=""):
    return Ballot(number, passed, total, list(outputs), error=error, escalated=escalated)


def test_the_largest_agreeing_group_wins():
    ballots = [ballot(0, outputs=["= 1", "= 2"]), ballot(1, outputs=["= 1", "= 3"]), ballot(2, outputs=["= 1", "= 3"])]
    result = consensus.vote(ballots, ["[1]", "[2]"])
    assert (result.winner.number, result.group, result.splitting) == (1, [1, 2], [1])


def test_a_lone_passing_outlier_loses_to_an_agreeing_majority_even_as_the_draft():
    ballots = [ballot(0, outputs=["= 'x'"]), *(ballot(n, outputs=["= 'y'"]) for n in (1, 2, 3))]
    result = consensus.vote(ballots, ["['a']"])
    assert result.winner.number == 1 and result.group == [1, 2, 3] and result.considered == 4


def test_only_the_candidates_passing_the_most_verdict_tests_vote():
    ballots = [ballot(0, passed=3, outputs=["= 1"]), *(ballot(n, passed=2, outputs=["= 2"]) for n in (1, 2, 3))]
    result = consensus.vote(ballots, ["[1]"])
    assert result.winner.number == 0 and result.group == [0] and result.considered == 1


def test_inputs_that_make_a_candidate_raise_do_not_split_groups():
    ballots = [ballot(0, outputs=["= 1", "raise IndexError"]), ballot(1, outputs=["= 1", "= 0"])]
    result = consensus.vote(ballots, ["[1]", "[]"])
    assert result.group == [0, 1] and result.used == [0] and result.splitting == []


def test_ties_go_to_the_escalated_model_then_the_earliest_candidate():
    ballots = [ballot(0, outputs=["= 1"]), ballot(1, outputs=["= 2"], escalated=True)]
    assert consensus.vote(ballots, ["[1]"]).winner.number == 1
    assert consensus.vote(ballots[:1] + [ballot(1, outputs=["= 2"])], ["[1]"]).winner.number == 0


def test_candidates_without_code_never_win():
    assert consensus.vote([ballot(0, error="no code block")], []).winner is None


def test_a_roster_naming_an_unknown_model_or_role_is_refused_clearly():
    models = {"small": {}, "large": {}}
    assert roster("generator=large", models, {"generator": "small"}) == {"generator": "large"}
    with pytest.raises(ValueError, match="unknown model 'huge'"):
        roster("generator=huge", models, {})
    with pytest.raises(ValueError, match="unknown role 'chef'"):
        roster("chef=small", models, {})


def test_example_inputs_come_from_doctests_and_pytest_files_with_literal_arguments_only():
    tests = {
        "test_example_01.txt": ">>> from solution import *\n>>> slugify('A b') == 'a-b'\nTrue\n",
        "test_acceptance.py": "from solution import slugify\n\ndef test_x():\n    assert slugify('x', 2) == 'x'\n"
        "    assert slugify(name) == 'n'\n",
    }
    assert behaviour.example_inputs(tests, "slugify") == ["['x', 2]", "['A b']"]


def test_mutations_are_typed_bounded_deterministic_and_new():
    seeds = ["['Hello', 3]", "[[1, 2, 3]]"]
    first = behaviour.mutations(seeds, 8, seed=7)
    assert first == behaviour.mutations(seeds, 8, seed=7) and len(first) == 8
    assert not set(first) & set(seeds)
    assert "['', 3]" in behaviour.mutations(seeds, 40) and "[[]]" in behaviour.mutations(seeds, 40)


def test_proposed_inputs_keep_only_literal_argument_lists():
    items = [
        ProposedInput(args="[3, 'abc']"),
        ProposedInput(args="(1,)"),
        ProposedInput(args="os.system('x')"),
        ProposedInput(args="5"),
        ProposedInput(args="[IV]"),
    ]
    assert behaviour.parse_proposed(items) == ["[3, 'abc']", "[1]"]


def test_a_report_missing_or_forged_for_a_candidate_counts_as_missing():
    stdout = (
        'noise\nGRYPHGEN-PROBE {"c0": {"status": "ok", "outputs": ["= 1"]}, "c1": {"status": "ok", "outputs": []}}\n'
    )
    probes = behaviour.parse_report(stdout, {0: {}, 1: {}, 2: {}}, ["[1]"])
    assert probes[0].outputs == ["= 1"] and probes[1].status == probes[2].status == "missing"


def test_monitor_cases_need_a_literal_expected_value_and_can_be_taken_out_by_name():
    cases = [MonitorCase(call="roman('IV')", expected="(IV)"), MonitorCase(call="roman('V')", expected="5"),
             MonitorCase(call="roman('X')", expected="-(-10)"), MonitorCase(call="roman('I')", expected="[1][0]"),
             MonitorCase(call="roman('L')", expected="50")]  # fmt: skip
    tests = verdict.monitor_test_file(cases)
    assert tests["test_monitor.py"].count("def test_case_") == 2  # names and expressions are not expected values
    kept = verdict.without_monitor_cases(tests, {"test_monitor.py::test_case_1"})["test_monitor.py"]
    assert "def test_case_2" in kept and "def test_case_1" not in kept and "== (50)" in kept
    assert verdict.without_monitor_cases(tests, {"test_monitor.py::test_case_1", "test_monitor.py::test_case_2"}) == {}


def test_only_exact_literal_outputs_become_expected_values():
    assert behaviour.literal_output("= 'a-b'") == "'a-b'"
    assert behaviour.literal_output("= [1, (2, 'x')]") == "[1, (2, 'x')]"
    for output in ("= 0.333333", "= [1.5]", "raise ValueError", "= <object at 0x1>", "= '" + "x" * 300 + "'"):
        assert behaviour.literal_output(output) is None, output


def test_a_single_module_under_its_own_name_is_the_solution():
    files, error = replies.extract_files("```python\n# file: slugify.py\n\ndef slugify(t):\n    return t\n```")
    assert error == "" and list(files) == ["solution.py"]


def test_forgotten_standard_library_imports_are_added_and_bound_names_left_alone():
    source = "def f(xs: List[int], re=None):\n    return math.floor(collections.Counter(xs)[0]) + len(re or '')\n"
    fixed = replies.with_missing_imports(source)
    assert fixed.splitlines()[:3] == ["import collections", "import math", "from typing import List"]
    assert "import re" not in fixed  # a parameter named re is not the module
    assert replies.with_missing_imports("import re\nx = re.sub('a', 'b', 'c')\n").count("import re") == 1
    assert replies.with_missing_imports("def broken(:\n") == "def broken(:\n"
