"""The attack suite: hostile programs run straight in the sandbox, with no safety review in front.

Each test asserts the exact outcome (status and which limit the host saw fire) and, through the
autouse fixture, that the host is unharmed: no process of any slot uid survives the run, the
canary file in the checkout is intact, and the next ordinary run still passes.
"""

import fcntl
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import override_settings

from agents import sandbox, sandbox_slots
from tests.stack_env import BASE, SCRIPTED_LLM

PYTHON = "/runtime/bin/python"
SECRET = "gryphgen-test-secret-7f3a9c"
CANARY = BASE / "var" / "test-canary.txt"


def attack(code, **limits):
    return sandbox.run({"main.py": code}, [PYTHON, "main.py"], limits or None)


def idle_slot_processes():
    """(pid, uid) of processes running as the uid of a slot that no run holds right now."""
    base, found = settings.GRYPHGEN_SANDBOX_UID_BASE, []
    for index in range(settings.GRYPHGEN_SANDBOX_SLOTS):
        fd = os.open(settings.GRYPHGEN_SANDBOX_DIR / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another run (another test session) holds it
        else:
            found += [(pid, base + index) for pid in sandbox_slots.processes_of(base + index)]
        finally:
            os.close(fd)
    return found


@pytest.fixture(autouse=True)
def host_unharmed(monkeypatch):
    monkeypatch.setenv("GRYPHGEN_TEST_SECRET", SECRET)
    CANARY.write_text("intact")
    yield
    assert idle_slot_processes() == [], "a sandboxed process outlived its run"
    assert CANARY.read_text() == "intact"
    assert attack("print('still fine')").stdout == "still fine\n"


def test_infinite_loop_hits_the_cpu_limit():
    result = attack("while True:\n    pass\n", cpu_seconds=2, wall_seconds=10)
    assert (result.status, result.limit) == ("limit", "cpu")
    assert result.cpu_ms >= 1800 and result.duration_ms < 8000


def test_sleeping_forever_hits_the_wall_clock():
    result = attack("import time\ntime.sleep(10**6)\n", wall_seconds=2)
    assert (result.status, result.limit) == ("limit", "wall_clock")
    assert 2000 <= result.duration_ms < 8000 and result.cpu_ms < 1000


@pytest.mark.parametrize("module", ["os", "posix"])
def test_fork_bomb_hits_the_process_limit(module):
    code = f"import {module}\nwhile True:\n    try:\n        {module}.fork()\n    except OSError:\n        pass\n"
    result = attack(code, wall_seconds=4)
    assert (result.status, result.limit) == ("limit", "processes")


def test_allocating_10_gb_hits_the_memory_limit():
    result = attack("b = bytearray(10 * 2**30)\nprint('allocated')\n")
    assert (result.status, result.limit) == ("limit", "memory")
    assert "allocated" not in result.stdout
    assert 0 < result.peak_memory_kb <= settings.GRYPHGEN_SANDBOX_LIMITS["memory_mb"] * 1024


def test_writing_a_1_gb_file_fills_only_the_work_dir():
    code = "chunk = b'x' * 2**20\nwith open('big', 'wb') as fh:\n    for _ in range(1024):\n        fh.write(chunk)\n"
    result = attack(code)
    assert (result.status, result.limit) == ("limit", "work_dir")
    assert "No space left on device" in result.stderr


def test_printing_1_gb_hits_the_output_cap():
    result = attack("import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2**20)\n")
    assert (result.status, result.limit) == ("limit", "output")
    assert len(result.stdout) <= sandbox.STORED_OUTPUT + 100


def test_writes_outside_the_work_dir_fail():
    targets = ["/etc/gryphgen-pwned", str(CANARY), str(BASE / "pwned.py"), str(settings.GRYPHGEN_WORKSPACES_DIR / "x")]
    code = (
        "import sys\nwrote = []\n"
        f"for path in {targets!r}:\n"
        "    try:\n        open(path, 'w').write('pwned')\n        wrote.append(path)\n"
        "    except OSError as exc:\n        print(path, type(exc).__name__)\n"
        "sys.exit(3 if wrote else 0)\n"
    )
    result = attack(code)
    assert result.status == "passed", result.stdout + result.stderr
    assert result.stdout.count("Error") == len(targets)
    assert not Path("/etc/gryphgen-pwned").exists() and not (BASE / "pwned.py").exists()


def test_secrets_are_out_of_reach():
    code = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit() or pid == 'self':\n"
        "        try:\n            print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError as exc:\n            print(pid, exc)\n"
        f"for path in {[str(BASE / 'gryphgen_site' / 'settings.py'), str(BASE / '.env'), '/proc/1/cmdline']!r}:\n"
        "    try:\n        print(path, open(path).read()[:200])\n"
        "    except OSError as exc:\n        print(path, type(exc).__name__)\n"
    )
    result = attack(code)
    assert result.status == "passed"
    output = result.stdout + result.stderr
    assert result.stdout.startswith("{'LC_CTYPE': 'C.UTF-8'}\n")  # empty; Python itself adds LC_CTYPE (PEP 538)
    for leak in (SECRET, "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"):
        assert leak not in output
    assert "settings.py FileNotFoundError" in output and ".env FileNotFoundError" in output


def test_no_network_to_the_stack_or_outside():
    db = settings.DATABASES["default"]
    targets = [
        ("127.0.0.1", urlparse(settings.CELERY_BROKER_URL).port),
        (db["HOST"], int(db["PORT"])),
        ("127.0.0.1", urlparse(SCRIPTED_LLM.url).port),
        ("1.1.1.1", 53),
        ("8.8.8.8", 443),
    ]
    for host, port in targets[:3]:  # the host itself reaches them: the test means something
        socket.create_connection((host, port), timeout=2).close()
    code = (
        "import socket\n"
        f"for host, port in {targets!r}:\n"
        "    try:\n        socket.create_connection((host, port), timeout=2)\n        print('CONNECTED', host, port)\n"
        "    except OSError as exc:\n        print('blocked', host, port, exc)\n"
    )
    result = attack(code)
    assert result.status == "passed"
    assert "CONNECTED" not in result.stdout and result.stdout.count("blocked") == len(targets)


def test_ctypes_and_exec_stay_inside_the_jail():
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print('setuid', libc.setuid(0), 'unshare', libc.unshare(0x10000000), 'clone_newuser',"
        " libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0), flush=True)\n"
        "os.execv('/bin/sh', ['sh', '-c', 'echo uid=$(id -u); echo pwned > /etc/gryphgen-pwned || echo write-failed'])\n"
    )
    result = attack(code)
    assert result.status == "passed", result.stderr
    assert "setuid -1 unshare -1 clone_newuser -1" in result.stdout
    uid = int(result.stdout.split("uid=")[1].split()[0])
    assert settings.GRYPHGEN_SANDBOX_UID_BASE <= uid < settings.GRYPHGEN_SANDBOX_UID_BASE + 64
    assert "write-failed" in result.stdout and not Path("/etc/gryphgen-pwned").exists()


def test_segfault_is_a_plain_failure():
    result = attack("import ctypes\nctypes.string_at(0)\n")
    assert (result.status, result.limit, result.exit_code) == ("failed", "", 139)


def test_remounting_root_read_write_fails():
    code = (
        "import ctypes, subprocess\n"
        "print('mount(8)', subprocess.run(['mount', '-o', 'remount,rw', '/'], capture_output=True).returncode)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('mount(2)', libc.mount(b'none', b'/', None, 32 | 4096, None), ctypes.get_errno())\n"  # MS_REMOUNT|MS_BIND
        "try:\n    open('/usr/gryphgen-pwned', 'w')\nexcept OSError as exc:\n    print('usr', type(exc).__name__)\n"
    )
    result = attack(code)
    assert result.status == "passed", result.stderr
    assert "mount(8) 0" not in result.stdout and "mount(2) -1 1" in result.stdout  # EPERM
    assert "usr OSError" in result.stdout or "usr PermissionError" in result.stdout
    assert not Path("/usr/gryphgen-pwned").exists()


def test_a_daemonised_grandchild_dies_with_its_run():
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "        open('/sandbox/late', 'w').write('still here')\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\nprint('parent done')\n"
    )
    result = attack(code, wall_seconds=10)
    assert (result.status, result.stdout) == ("passed", "parent done\n")
    assert result.duration_ms < 5000  # the run ended with its main process, not the grandchild


def test_kill_minus_one_and_a_fork_bomb_cannot_touch_another_slot():
    victim = {}

    def run_victim():
        victim["result"] = attack("import time\ntime.sleep(3)\nprint('survived')\n", wall_seconds=10)

    thread = threading.Thread(target=run_victim)
    thread.start()
    try:
        killer = attack(
            "import os, time\nif os.fork() == 0:\n    time.sleep(30)\ntime.sleep(0.5)\nos.kill(-1, 9)\n"
            "print('child', os.wait()[1] & 0x7f)\n"
        )
        bomb = attack("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                      wall_seconds=2)  # fmt: skip
    finally:
        thread.join(30)
    assert (killer.status, killer.stdout) == ("passed", "child 9\n")  # it reached only its own child
    assert bomb.limit == "processes"
    assert (victim["result"].status, victim["result"].stdout) == ("passed", "survived\n")


def test_a_missing_isolation_tool_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    with override_settings(GRYPHGEN_NSJAIL=str(tmp_path / "no-nsjail")):
        result = attack(f"open({str(marker)!r}, 'w')\n")
    assert result.status == "unavailable" and "isolation tool" in result.stderr
    assert not marker.exists()


def test_a_command_that_does_not_exist_is_a_clean_failure():
    result = sandbox.run({"main.py": "x = 1\n"}, ["/no/such/command"])
    assert result.status == "failed" and "could not be executed" in result.stderr


def test_file_paths_through_a_symlink_are_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "pkg").symlink_to(tmp_path / "out")
    with pytest.raises(sandbox.SandboxRefused, match="symlink"):
        sandbox.write_tree(tmp_path / "work", {"pkg/mod.py": "x = 1\n"}, os.getuid())
    assert list((tmp_path / "out").iterdir()) == []


def test_system_uids_are_refused():
    with override_settings(GRYPHGEN_SANDBOX_UID_BASE=0):
        result = attack("print('ran')\n")
    assert result.status == "unavailable" and "system uid" in result.stderr


def test_kill_uid_finds_nothing_left_after_a_run():
    attack("print(1)\n")
    assert all(sandbox_slots.kill_uid(settings.GRYPHGEN_SANDBOX_UID_BASE + i) == 0 for i in range(2))


def test_a_uid_that_belongs_to_an_account_is_refused():
    with override_settings(GRYPHGEN_SANDBOX_SLOTS=1, GRYPHGEN_SANDBOX_UID_BASE=65534):  # nobody
        result = attack("print('ran')\n")
    assert result.status == "unavailable" and "belongs to the account 'nobody'" in result.stderr


FAKE_SUMMARY = "PASSED test_a.py::test_f\\n1 passed in 0.01s\\n"
VERDICT = {
    "test_a.py": "from solution import f\n\ndef test_f():\n    assert f() == 2\n",
    "test_example_01.txt": ">>> from solution import *\n>>> f()\n2\n",
}


@pytest.mark.parametrize(
    "forgery",
    [
        f"import os, sys\nsys.stdout.write('{FAKE_SUMMARY}')\nsys.stdout.flush()\nos._exit(0)\n",  # a summary, then exit 0
        "import sys\nsys.exit(0)\n",  # leave before any test runs
        "import pytest\npytest.skip('nothing to see', allow_module_level=True)\n",  # skip the verdict away
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos._exit(0)\n",  # kill whatever runs the tests
    ],
)
def test_code_under_test_cannot_forge_a_passing_verdict(forgery):
    """A pass is counted only from the verdict runner's complete result record, never from the
    exit code or what the run printed."""
    result = sandbox.run_tests({"solution.py": "def f():\n    return 1\n\n" + forgery}, VERDICT)
    assert result.status == "failed"
    assert {t["name"].partition("::")[0] for t in result.tests} >= set(VERDICT)
    assert not any(t["outcome"] == "passed" for t in result.tests)


def test_the_verdict_record_counts_every_test_that_ran():
    result = sandbox.run_tests({"solution.py": "def f():\n    return 2\n"}, VERDICT)
    assert result.status == "passed" and result.record["finished"] is True
    assert sorted(t["name"] for t in result.tests) == ["test_a.py::test_f", "test_example_01.txt::test_example_01.txt"]


def test_another_runs_work_dir_is_out_of_reach():
    victim = {}
    mark = "secret-of-the-other-run-5e1f"  # the thief's own source spells it in two halves

    def run_victim():
        victim["result"] = attack(
            f"import time\nopen('mine.txt', 'w').write({mark!r})\ntime.sleep(3)\nprint(open('mine.txt').read())\n",
            wall_seconds=10,
        )

    thread = threading.Thread(target=run_victim)
    thread.start()
    try:
        time.sleep(1)
        thief = attack(
            "import os\nfound = []\n"
            "def look(path):\n"
            "    try:\n        data = open(path, 'rb').read(200000)\n    except OSError:\n        return\n"
            f"    if {mark[:10].encode()!r} + {mark[10:].encode()!r} in data:\n        found.append(path)\n"
            "skip = ('/proc', '/sys', '/usr', '/lib', '/lib64', '/bin', '/runtime', '/gryphgen')\n"
            "for root, dirs, files in os.walk('/', onerror=lambda e: None):\n"
            "    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]\n"
            "    for name in files:\n        look(os.path.join(root, name))\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    for sub in ('cwd', 'root'):\n"
            "        try:\n            names = os.listdir(f'/proc/{pid}/{sub}')\n"
            "        except OSError:\n            continue\n"
            "        for name in names:\n            look(f'/proc/{pid}/{sub}/{name}')\n"
            "print('found', found)\n",
            wall_seconds=15,
        )  # fmt: skip
    finally:
        thread.join(30)
    assert thief.status == "passed", (thief.limit, thief.stdout[-500:], thief.stderr[-500:])
    assert "found []" in thief.stdout
    assert (victim["result"].status, victim["result"].stdout) == ("passed", mark + "\n")


def test_many_processes_share_one_memory_limit():
    """Eight processes of 100 MB each stay under any per-process limit; the run's one limit holds them."""
    code = (
        "import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n"
        "        b = b'x' * (100 * 2**20)\n        time.sleep(5)\n        os._exit(0)\n"
        "statuses = [os.wait()[1] for _ in range(8)]\n"
        "print('whole', sum(s == 0 for s in statuses), 'killed', sum(s & 0x7f == 9 for s in statuses))\n"
    )
    result = attack(code, memory_mb=256, wall_seconds=15)
    assert (result.status, result.limit) == ("limit", "memory"), result.stdout + result.stderr
    whole, killed = (int(n) for n in result.stdout.split()[1::2])
    assert whole * 100 <= 256 and killed >= 8 - 2  # no more than the one limit's worth lived


def test_dev_shm_is_not_a_way_around_the_limits():
    code = (
        "import os\nfor path in ('/dev/shm/x', '/dev/mqueue/x'):\n"
        "    try:\n        open(path, 'wb').write(b'x' * 2**20)\n        print(path, 'written')\n"
        "    except OSError as exc:\n        print(path, type(exc).__name__)\n"
        "from multiprocessing import shared_memory\n"
        "try:\n    shared_memory.SharedMemory(create=True, size=2**30)\n    print('shm created')\n"
        "except OSError as exc:\n    print('shm', type(exc).__name__)\n"
    )
    result = attack(code)
    assert result.status == "passed" and "written" not in result.stdout and "shm created" not in result.stdout
    assert "shm FileNotFoundError" in result.stdout or "shm PermissionError" in result.stdout


def test_setuid_binaries_give_no_privileges():
    """The jail sees /usr (su, mount, passwd are setuid root), but runs with no_new_privs: the kernel
    ignores the setuid bit, so running one never raises the uid."""
    code = (
        "import os, subprocess\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "print('nnp', status['NoNewPrivs'].strip(), 'uid', os.getuid())\n"
        "setuid = [os.path.join('/usr/bin', n) for n in os.listdir('/usr/bin')\n"
        "          if os.lstat(os.path.join('/usr/bin', n)).st_mode & 0o4000]\n"
        "print('setuid binaries', len(setuid))\n"
        "r = subprocess.run(['/usr/bin/su', '-c', 'touch /usr/pwned', 'root'], capture_output=True,\n"
        "                   stdin=subprocess.DEVNULL, timeout=5)\n"
        "print('su', r.returncode, os.path.exists('/usr/pwned'))\n"
    )
    result = attack(code)
    assert result.status == "passed", result.stdout + result.stderr
    assert "nnp 1 uid " in result.stdout and "uid 0" not in result.stdout
    assert "setuid binaries 0" not in result.stdout  # the test means something: they are there
    su_line = next(line for line in result.stdout.splitlines() if line.startswith("su "))
    assert su_line.endswith(" False") and su_line != "su 0 False"  # su failed and wrote nothing
    assert not Path("/usr/pwned").exists()
