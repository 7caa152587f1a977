"""Verdict tests: the tests that decide whether code is accepted.

They come from the owner's acceptance tests, else the request's doctest examples, else test
cases the Task Monitor writes from the request, and never from the generator, or the code
would certify itself. Everything here parses text; nothing is executed on the host.
"""

import ast
import doctest
import re

from agents import behaviour, pysource
from agents.schemas import MonitorCase

IDENTIFIER_CALL = re.compile(r"(?:\bdef\s+|`)([A-Za-z_]\w*)\s*\(")


def entry_point(request: str) -> str:
    match = IDENTIFIER_CALL.search(request)
    return match.group(1) if match else ""


MAX_DOCTEST_FILES = 40  # beyond this many examples, files hold several each (a work dir holds few files)


def doctest_files(request: str) -> dict:
    """One doctest file per example in the request, so each counts as its own verdict test (with
    more than MAX_DOCTEST_FILES examples, consecutive examples share a file)."""
    try:
        examples = doctest.DocTestParser().get_examples(request)
    except ValueError:  # malformed example (bad indentation): treat the request as prose
        return {}
    per_file = -(-len(examples) // MAX_DOCTEST_FILES)
    files = {}
    for i in range(0, len(examples), per_file or 1):
        body = "".join(_example_text(example) for example in examples[i : i + per_file])
        files[f"test_example_{i // per_file + 1:02d}.txt"] = ">>> from solution import *\n" + body
    return files


def _example_text(example) -> str:
    first, *rest = example.source.strip().splitlines()
    return "".join([f">>> {first}\n", *(f"... {line}\n" for line in rest), example.want])


MONITOR_FILE = "test_monitor.py"


def monitor_test_file(cases: list[MonitorCase]) -> dict:
    """Turn the monitor's (call, expected) pairs into a pytest module; drop a case whose call does
    not parse or whose expected value is not a literal (a small model writes `== (IV)`)."""
    functions = []
    for case in cases:
        call, expected = case.call.strip(), case.expected.strip()
        try:
            pysource.parse(call, mode="eval")
            ast.literal_eval(pysource.parse(expected, mode="eval"))
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            continue
        functions.append(f"def test_case_{len(functions) + 1}():\n    assert ({call}) == ({expected})\n")
    return _test_module(MONITOR_FILE, functions)


def _test_module(name: str, functions: list) -> dict:
    """{name: a pytest module of `functions` over the solution}, or {} when there are none."""
    if not functions:
        return {}
    return {name: "from solution import *\n\n\n" + "\n\n".join(functions)}


def without_monitor_cases(tests: dict, names: set) -> dict:
    """The monitor's test module without the cases `names` ("test_monitor.py::test_case_2")."""
    source = tests[MONITOR_FILE]
    module = pysource.parse(source)
    kept = [
        ast.get_source_segment(source, node) + "\n"
        for node in module.body
        if isinstance(node, ast.FunctionDef) and f"{MONITOR_FILE}::{node.name}" not in names
    ]
    return _test_module(MONITOR_FILE, kept)


def call(entry_point: str, args: str) -> str:
    """`entry_point(a, b)` from an argument list literal "[a, b]" (agents.behaviour.literal_args),
    written as a plain call so that example_inputs reads it back."""
    return f"{entry_point}({args[1:-1]})"


AGREEMENT_FILE = "test_agreement.py"


def agreement_file(entry_point: str, cases: list) -> dict:
    """Verdict tests from agreeing candidates: `entry_point(*args) == expected` per (args, expected),
    both literals (agents.consensus.adopt_agreement)."""
    functions = [
        f"def test_agrees_{n + 1}():\n    assert {call(entry_point, args)} == ({expected})\n"
        for n, (args, expected) in enumerate(cases)
    ]
    return _test_module(AGREEMENT_FILE, functions)


CALLS_FILE = "test_calls.py"


def calls_file(entry_point: str, cases: list[MonitorCase]) -> dict:
    """When none of the monitor's cases has a literal expected value, its calls alone (literal
    arguments, each once): the code must answer them without raising. Consensus modes only: at the
    final vote a clear majority's agreed outputs must replace them (agents.consensus.adopt_agreement)."""
    calls = []
    for case in cases:
        for args in behaviour.calls_in(case.call, entry_point):
            if args not in calls:
                calls.append(args)
    functions = [f"def test_call_{n + 1}():\n    {call(entry_point, args)}\n" for n, args in enumerate(calls)]
    return _test_module(CALLS_FILE, functions)


def acceptance_file(source: str) -> dict:
    return {"test_acceptance.py": source}
