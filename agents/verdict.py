"""Verdict tests: the tests that decide whether code is accepted.

They come from the owner's acceptance tests, else the request's doctest examples, else test
cases the Task Monitor writes from the request, and never from the generator, or the code
would certify itself. Everything here parses text; nothing is executed on the host.
"""

import ast
import doctest
import re

IDENTIFIER_CALL = re.compile(r"(?:\bdef\s+|`)([A-Za-z_]\w*)\s*\(")


def entry_point(request: str) -> str:
    match = IDENTIFIER_CALL.search(request)
    return match.group(1) if match else ""


def doctest_files(request: str) -> dict:
    """One doctest file per example in the request, so each counts as its own verdict test."""
    try:
        examples = doctest.DocTestParser().get_examples(request)
    except ValueError:  # malformed example (bad indentation): treat the request as prose
        return {}
    files = {}
    for i, example in enumerate(examples, 1):
        body = f">>> from solution import *\n>>> {example.source.strip()}\n{example.want}"
        files[f"test_example_{i:02d}.txt"] = body
    return files


def monitor_test_file(cases: list) -> dict:
    """Turn the monitor's (call, expected) pairs into a pytest module; drop cases that don't parse."""
    functions = []
    for case in cases:
        call, expected = case["call"].strip(), case["expected"].strip()
        try:
            ast.parse(call, mode="eval")
            ast.parse(expected, mode="eval")
        except SyntaxError:
            continue
        functions.append(f"def test_case_{len(functions) + 1}():\n    assert ({call}) == ({expected})\n")
    if not functions:
        return {}
    return {"test_monitor.py": "from solution import *\n\n\n" + "\n\n".join(functions)}


def acceptance_file(source: str) -> dict:
    return {"test_acceptance.py": source}
