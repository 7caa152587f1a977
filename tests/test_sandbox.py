"""Sandbox v1: generated code runs under nsjail as an unprivileged user, with limits the host enforces."""

import os

import pytest

from agents import sandbox

TESTS = {"test_a.py": "from solution import *\n\ndef test_f():\n    assert f() == 1\n"}


def probe(code, **limits):
    """Run `code` as solution.py under a test that imports it; return the result."""
    return sandbox.run_tests({"solution.py": code}, TESTS, limits or None)


def test_passing_and_failing_tests_are_reported_per_test():
    result = sandbox.run_tests(
        {"solution.py": "def f():\n    return 1\n"},
        {
            "test_a.py": "from solution import f\n\ndef test_ok():\n    assert f() == 1\n\ndef test_bad():\n    assert f() == 2\n"
        },
    )
    assert result.status == "failed" and result.exit_code == 1
    assert {t["name"]: t["outcome"] for t in result.tests} == {
        "test_a.py::test_ok": "passed",
        "test_a.py::test_bad": "failed",
    }


def test_a_failed_doctest_example_says_what_it_returned_or_raised():
    """pytest's summary gives a failed doctest no message; the repair prompt and the task page need one."""
    from agents.verdict import doctest_files

    request = ">>> f(1)\n3\n>>> f(3)\n4\n>>> f(0)\n1\n>>> print(end='')\n5\n"
    code = "def f(x):\n    if x == 3:\n        raise ValueError('three is bad')\n    return x + 1\n"
    result = sandbox.run_tests({"solution.py": code}, doctest_files(request))
    messages = {t["name"].partition("::")[0]: (t["outcome"], t["message"]) for t in result.tests}
    assert messages == {
        "test_example_01.txt": ("failed", "f(1) returned 2, expected 3"),
        "test_example_02.txt": ("failed", "f(3) raised ValueError('three is bad')"),
        "test_example_03.txt": ("passed", ""),
        "test_example_04.txt": ("failed", "print(end='') returned nothing, expected 5"),
    }


def test_runs_as_unprivileged_user_with_empty_environment_and_no_checkout():
    code = (
        "import os, json\n"
        "def f():\n    return 1\n"
        "INFO = {'uid': os.getuid(), 'env': sorted(os.environ), 'root': sorted(os.listdir('/')),"
        " 'cwd': os.getcwd()}\n"
    )
    tests = {"test_a.py": "import solution\n\ndef test_info():\n    assert False, repr(solution.INFO)\n"}
    result = sandbox.run_tests({"solution.py": code}, tests)
    message = result.stdout
    assert "'uid': 6000" in message and "'cwd': '/sandbox'" in message
    assert "DATABASE_URL" not in message and "REDIS_URL" not in message and "SECRET" not in message
    assert "'work'" not in message  # the checkout (and var/, .venv) is not mounted
    assert str(os.getcwd()) not in message


def test_wall_clock_limit_is_decided_by_the_host():
    result = probe("import time\ntime.sleep(60)\n", wall_seconds=2)
    assert (result.status, result.limit) == ("limit", "wall_clock")
    assert 2000 <= result.duration_ms < 10000


def test_output_cap_kills_the_run():
    result = sandbox.run({"main.py": "import sys\nwhile True: sys.stdout.write('x' * 65536)\n"},
                         ["/runtime/bin/python", "main.py"], {"output_bytes": 100_000})  # fmt: skip
    assert (result.status, result.limit) == ("limit", "output")
    assert len(result.stdout) <= sandbox.STORED_OUTPUT + 100


def test_filesystem_outside_the_work_dir_is_read_only():
    code = "def f():\n    return 1\ntry:\n    open('/usr/evil', 'w')\n    WROTE = True\nexcept OSError:\n    WROTE = False\n"
    tests = {"test_a.py": "import solution\n\ndef test_ro():\n    assert solution.WROTE is False\n"}
    assert sandbox.run_tests({"solution.py": code}, tests).status == "passed"


def test_network_is_unreachable():
    code = (
        "import socket\ndef f():\n    return 1\n"
        "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    NET = True\n"
        "except OSError:\n    NET = False\n"
    )
    tests = {"test_a.py": "import solution\n\ndef test_net():\n    assert solution.NET is False\n"}
    assert sandbox.run_tests({"solution.py": code}, tests).status == "passed"


@pytest.mark.parametrize("name", ["../escape.py", "/etc/passwd", "a/../../b.py", "conftest.py"])
def test_paths_that_escape_or_hook_pytest_are_refused(name):
    result = sandbox.run_tests({name: "x = 1\n"}, TESTS)
    assert result.status == "refused" and name.rsplit("/", 1)[-1] in result.stderr


def test_non_utf8_output_is_a_clean_result():
    result = sandbox.run(
        {"main.py": "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok')\n"}, ["/runtime/bin/python", "main.py"]
    )
    assert result.status == "passed" and result.stdout.endswith(" ok")


def test_invalid_python_fails_without_exception():
    result = probe("def f(:\n")
    assert result.status == "failed" and "SyntaxError" in result.stdout
