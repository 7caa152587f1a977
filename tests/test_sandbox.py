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


def test_a_slots_spawner_runs_only_nsjail():
    """The spawner is root inside the slot's cgroups: it forks the nsjail binary it was started with
    and nothing else, whatever the host asks."""
    from django.conf import settings

    from agents import sandbox_slots

    limits = settings.GRYPHGEN_SANDBOX_LIMITS
    with sandbox_slots.claim(limits, wait_seconds=30, nsjail=sandbox.nsjail_binary()) as slot:
        with pytest.raises(sandbox_slots.SlotError, match="refused the run: the spawner runs only"):
            slot.start(["/bin/sh", "-c", "touch /tmp/spawned"])
        assert slot.leftovers() == []


def test_a_dead_or_foreign_spawner_is_replaced_and_runs_start_inside_the_slots_cgroups():
    from django.conf import settings

    from agents import sandbox_slots

    limits = settings.GRYPHGEN_SANDBOX_LIMITS
    with sandbox_slots.claim(limits, wait_seconds=30, nsjail=sandbox.nsjail_binary()) as slot:
        first, index = slot.spawner_pid, slot.index
        assert slot.holds(first)
        started = slot.start(sandbox.jail_argv(slot, limits, ["/bin/sleep", "5"]))
        assert started.pid in slot.leftovers() and slot.holds(started.pid)  # forked there, never moved
        os.kill(first, 9)
        with pytest.raises(sandbox_slots.SlotError, match="closed the connection"):
            slot.wait()
    with sandbox_slots.claim(limits, wait_seconds=30, nsjail=sandbox.nsjail_binary()) as slot:
        assert slot.index == index and slot.spawner_pid != first and slot.holds(slot.spawner_pid)
        assert slot.leftovers() == []  # the orphaned jail was killed before the slot was handed out
    assert sandbox.run({}, ["/runtime/bin/python", "-c", "print(6 * 7)"]).stdout == "42\n"


def test_a_spawner_ends_with_the_process_that_started_it(tmp_path):
    """No root process outlives the worker (here: a Python process) that started it."""
    import subprocess
    import sys
    import time

    script = (  # without the slots' sockets it cannot use this process's spawners: it starts its own
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from agents import sandbox, sandbox_slots\n"
        "for sock in settings.GRYPHGEN_SANDBOX_DIR.glob('slot-*.sock'): sock.unlink()\n"
        "assert sandbox.run({}, ['/runtime/bin/python', '-c', 'pass']).status == 'passed'\n"
        "print(*[p.pid for p in sandbox_slots._spawners.values()])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    spawners = [int(pid) for pid in out.stdout.split()]
    assert spawners, out.stderr
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in spawners) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in spawners)
