"""Sandbox slots: one concurrent run each, so runs cannot reach one another.

A slot is claimed with an exclusive `flock` on `var/sandbox/slot-N.lock` (the kernel drops it
if the worker dies) and owns:

- its own unprivileged uid (`GRYPHGEN_SANDBOX_UID_BASE + N`), so one run's `kill(-1)` or
  process limit never touches another run's processes;
- a fresh tmpfs (`var/sandbox/slot-N/`) holding the jail's work dir and /tmp, so the host
  bounds the bytes and files a run can write and sees afterwards whether it filled them;
- a cgroup (v1: one per controller; v2: one group) that holds the run's memory (swap
  included), process count and CPU share, and whose counters tell the host whether the
  memory or the process limit fired. A host with neither v1 nor v2 memory and pids
  controllers runs nothing: the sandbox fails closed and says why.

Each slot also has a spawner (`slot_spawner`): a root process moved into the slot's cgroups once,
which forks every run's jail there, so a run never pays for a move into a cgroup. Before and
after every run, anything else still in the slot's cgroups is killed.
"""

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import pwd
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from agents import slot_spawner

log = logging.getLogger(__name__)
SPAWNER = Path(slot_spawner.__file__).resolve()
SPAWNER_START_SECONDS = 10
MNT_DETACH = 2
CPU_PERIOD_US = 100_000
_libc = ctypes.CDLL(None, use_errno=True)


# sh -c: $1 is the failure mark, then cgroup.procs files up to "--", then the command
ENTER_CGROUPS = (
    'mark=$1; shift; while [ "$1" != -- ]; do '
    '{ echo $$ > "$1"; } 2>/dev/null || { echo "$mark: cannot enter the cgroup $1" >&2; exit 125; }; shift; done; '
    'shift; exec "$@"'
)


class SlotError(Exception):
    """The slot could not be prepared; nothing may run in it."""


@dataclass
class Usage:
    """What the host read off the slot after a run."""

    oom_kills: int = 0
    process_limit_hits: int = 0
    peak_memory_bytes: int = 0
    work_dir_full: bool = False


@dataclass
class Started:
    """A run the slot's spawner has forked: its pid and the read ends of its output."""

    pid: int
    stdout: object
    stderr: object


@dataclass
class Slot:
    index: int
    uid: int
    root: Path  # the tmpfs mount point
    cgroups: dict = field(default_factory=dict)  # controller -> Path (v2: one path for all)
    version: int = 1
    spawner: socket.socket | None = None  # this run's connection to the slot's spawner
    spawner_pid: int = 0
    replies: object = None  # the connection's replies, a line each

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def nsjail_log(self) -> Path:
        return self.root / "nsjail.log"

    def read_nsjail_log(self) -> str:
        try:
            return self.nsjail_log.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def entering_cgroups(self, argv: list, failure_mark: str) -> list:
        """`argv` (the slot's spawner) behind a host shell that moves itself into the slot's cgroups,
        then becomes `argv` (exec keeps the pid, so it starts inside them). A move that fails runs
        nothing: the shell prints `failure_mark` and why, and exits 125. Cheaper than moving the
        child in a preexec_fn, which makes Python fork the whole worker instead of vfork."""
        procs = [str(path / "cgroup.procs") for path in sorted(set(self.cgroups.values()))]
        return ["/bin/sh", "-c", ENTER_CGROUPS, "enter-cgroups", failure_mark, *procs, "--", *argv]

    def start(self, argv: list) -> Started:
        """Have the spawner fork `argv` (nsjail) inside the slot's cgroups, in a session of its own,
        with an empty environment and its output on two fresh pipes."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            socket.send_fds(self.spawner, [json.dumps({"argv": [str(a) for a in argv]}).encode()], [out_w, err_w])
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise SlotError(f"the slot's spawner did not take the run: {exc}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
        reply = self._reply()
        if "pid" not in reply:
            os.close(out_r)
            os.close(err_r)
            raise SlotError(f"the slot's spawner refused the run: {reply.get('error', reply)}")
        return Started(reply["pid"], open(out_r, "rb"), open(err_r, "rb"))

    def wait(self) -> tuple[int, float]:
        """The run's exit code (as `subprocess` gives it) and the CPU seconds of its whole tree."""
        reply = self._reply()
        if "status" not in reply:
            raise SlotError(f"the slot's spawner gave no exit status: {reply.get('error', reply)}")
        return os.waitstatus_to_exitcode(reply["status"]), reply["cpu_seconds"]

    def _reply(self) -> dict:
        line = self.replies.readline()
        if not line.endswith(b"\n"):
            raise SlotError("the slot's spawner closed the connection")
        try:
            return json.loads(line)
        except ValueError as exc:
            raise SlotError(f"the slot's spawner answered {line[:200]!r}") from exc

    def hang_up(self) -> None:
        self.replies.close()
        self.spawner.close()

    def leftovers(self) -> list:
        """Pids in the slot's cgroups other than its spawner: a run's processes, or a jail still
        up from a worker that died mid-run. Jailed code cannot leave the groups (no cgroupfs in
        the jail, no capabilities), so every process of the slot's uid is among them."""
        procs = self.cgroups["pids"] / "cgroup.procs"
        return [int(pid) for pid in procs.read_text().split() if int(pid) != self.spawner_pid]

    def kill_leftovers(self) -> int:
        """SIGKILL every leftover until none is left (a fork may land between a read and the
        kills); the number killed."""
        killed = 0
        for _ in range(50):
            pids = self.leftovers()
            if not pids:
                return killed
            killed += _sigkill(pids)
            time.sleep(0.001)
        raise SlotError(f"processes keep appearing in sandbox slot {self.index}: {self.leftovers()}")

    def holds(self, pid: int) -> bool:
        """Whether `pid` is in every one of the slot's cgroups."""
        for path in set(self.cgroups.values()):
            try:
                if str(pid) not in (path / "cgroup.procs").read_text().split():
                    return False
            except OSError:
                return False
        return True

    def counters(self) -> Usage:
        usage = Usage()
        memory, pids = self.cgroups.get("memory"), self.cgroups.get("pids")
        if self.version == 2:
            usage.oom_kills = _field(memory / "memory.events", "oom_kill")
            peak = memory / "memory.peak"  # Linux 5.19 and later
            usage.peak_memory_bytes = int(peak.read_text()) if peak.exists() else 0
            usage.process_limit_hits = _field(pids / "pids.events", "max")
            return usage
        if memory:
            usage.oom_kills = _field(memory / "memory.oom_control", "oom_kill")
            usage.peak_memory_bytes = int((memory / "memory.max_usage_in_bytes").read_text())
        if pids:
            usage.process_limit_hits = _field(pids / "pids.events", "max")
        return usage

    def usage_since(self, before: Usage) -> Usage:
        after = self.counters()
        stat = os.statvfs(self.root)
        return Usage(
            oom_kills=after.oom_kills - before.oom_kills,
            process_limit_hits=after.process_limit_hits - before.process_limit_hits,
            peak_memory_bytes=after.peak_memory_bytes,
            work_dir_full=stat.f_bavail * stat.f_frsize < 64 * 1024 or stat.f_favail == 0,
        )


def _field(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


@dataclass
class Hierarchy:
    """Where this process's cgroups are, as far as the sandbox needs them."""

    version: int  # 1 or 2; 0: none usable
    parents: dict  # v1: {controller: directory}; v2: {"": the directory its slot groups go under}
    controllers: tuple  # the controllers it can use: memory, pids and cpu where available

    def describe(self) -> str:
        if not self.version:
            return "no cgroup memory and pids controllers: the sandbox refuses to run"
        return f"cgroup v{self.version} ({', '.join(self.controllers)})"


REQUIRED = ("memory", "pids")


def hierarchy(mountinfo: str | None = None, own: str | None = None) -> Hierarchy:
    """v1 when this process has writable v1 memory and pids groups, else v2 when its v2 group can
    delegate memory and pids, else none. Arguments: /proc/self/mountinfo and /proc/self/cgroup
    (tests pass their own)."""
    mountinfo = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    own = own if own is not None else Path("/proc/self/cgroup").read_text()
    v1_mounts, v2_mount = {}, None
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        if not after:
            continue
        fstype, _, options = after.split()[:3]
        if fstype == "cgroup":
            for controller in ("memory", "pids", "cpu"):
                if controller in options.split(","):
                    v1_mounts[controller] = before.split()[4]
        elif fstype == "cgroup2":
            v2_mount = before.split()[4]
    v1, v2_path = {}, None
    for line in own.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            v2_path = path
        for controller in controllers.split(","):
            if controller in v1_mounts:
                v1[controller] = Path(v1_mounts[controller] + path)
    v1 = {c: p for c, p in v1.items() if os.access(p, os.W_OK)}
    if all(c in v1 for c in REQUIRED):
        return Hierarchy(1, v1, tuple(c for c in ("memory", "pids", "cpu") if c in v1))
    if v2_mount and v2_path is not None:
        parent = Path(v2_mount + v2_path.rstrip("/"))
        try:
            available = (parent / "cgroup.controllers").read_text().split()
        except OSError:
            available = []
        if all(c in available for c in REQUIRED) and os.access(parent, os.W_OK):
            return Hierarchy(2, {"": parent}, tuple(c for c in ("memory", "pids", "cpu") if c in available))
    return Hierarchy(0, {}, ())


def _write(path: Path, value) -> None:
    path.write_text(str(value))


def _make_cgroups(index: int, limits: dict, found: Hierarchy | None = None) -> tuple[dict, int]:
    """The slot's cgroups with the run's limits written: ({controller: path}, version)."""
    found = found or hierarchy()
    memory = limits["memory_mb"] * 1024 * 1024
    cpu_quota = int(limits["cpus"] * CPU_PERIOD_US)
    if found.version == 2:
        parent = found.parents[""]
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        wanted = [c for c in found.controllers if c not in enabled]
        if wanted:  # delegate them to the slot groups (refused where the parent holds processes itself)
            try:
                _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
            except OSError as exc:
                raise SlotError(f"cannot enable the cgroup v2 controllers {wanted} under {parent}: {exc}") from exc
        path = parent / f"gryphgen-slot-{index}"
        path.mkdir(exist_ok=True)
        _write(path / "memory.max", memory)
        _write(path / "memory.swap.max", 0)
        _write(path / "pids.max", limits["processes"] + 1)  # and the spawner
        if "cpu" in found.controllers:
            _write(path / "cpu.max", f"{cpu_quota} {CPU_PERIOD_US}")
        return {c: path for c in found.controllers}, 2
    if found.version == 1:
        groups = {}
        for controller, parent in found.parents.items():
            path = parent / f"gryphgen-slot-{index}"
            path.mkdir(exist_ok=True)
            groups[controller] = path
        memsw = groups["memory"] / "memory.memsw.limit_in_bytes"  # only with swap accounting on
        if memsw.exists():  # memory + swap may never be below memory: lift it, set memory, then hold it
            _write(memsw, -1)
        _write(groups["memory"] / "memory.limit_in_bytes", memory)
        if memsw.exists():  # no swap either
            _write(memsw, memory)
        _write(groups["memory"] / "memory.max_usage_in_bytes", 0)
        _write(groups["pids"] / "pids.max", limits["processes"] + 1)  # and the spawner
        if cpu := groups.get("cpu"):
            _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", cpu_quota)
        return groups, 1
    raise SlotError(
        "this host has neither cgroup v1 nor cgroup v2 memory and pids controllers that GRYPHGEN may use, so "
        "the sandbox cannot bound a run's memory and processes and refuses to run (run the worker as root "
        "on a host with cgroups mounted, or delegate a v2 subtree with memory and pids to it)"
    )


def processes_of(uid: int) -> list:
    """Pids of live processes whose real uid is `uid` (a zombie holds nothing; init reaps it)."""
    pids, wanted = [], f"\nUid:\t{uid}\t"  # the real uid comes first on the Uid line
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as fh:
                head = fh.read(2048)  # Name, State and Uid are near the top; a run is scanned often
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        if wanted in head and "\nState:\tZ" not in head:
            pids.append(int(entry.name))
    return pids


def kill_uid(uid: int) -> int:
    """SIGKILL every process whose real uid is `uid` (a slot's, never an account's); the number killed."""
    check_uid_is_free(uid)
    return _sigkill(processes_of(uid))


def _sigkill(pids: list) -> int:
    """SIGKILL each of `pids` still alive; the number killed."""
    killed = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def _mount_tmpfs(path: Path, size_mb: int, inodes: int) -> None:
    options = f"size={size_mb}m,nr_inodes={inodes},mode=0700".encode()
    if _libc.mount(b"tmpfs", bytes(path), b"tmpfs", 0, options) != 0:
        raise SlotError(f"cannot mount the work-dir tmpfs at {path}: {os.strerror(ctypes.get_errno())}")


def _unmount(path: Path) -> None:
    while os.path.ismount(path):
        if _libc.umount2(bytes(path), MNT_DETACH) != 0:
            raise SlotError(f"cannot unmount {path}: {os.strerror(ctypes.get_errno())}")


def check_uid_is_free(uid: int) -> None:
    if uid < 1000:
        raise SlotError(f"sandbox uid {uid} is a system uid; set GRYPHGEN_SANDBOX_UID_BASE to 1000 or more")
    with contextlib.suppress(KeyError):
        user = pwd.getpwuid(uid)
        raise SlotError(f"sandbox uid {uid} belongs to the account {user.pw_name!r}; set GRYPHGEN_SANDBOX_UID_BASE")


@contextlib.contextmanager
def claim(limits: dict, wait_seconds: float, nsjail: Path):
    """Claim a free slot, prepared and empty, whose spawner runs `nsjail`; released (and emptied) on exit."""
    base = settings.GRYPHGEN_SANDBOX_DIR
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + wait_seconds
    while True:
        for index in range(settings.GRYPHGEN_SANDBOX_SLOTS):
            fd = os.open(base / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                slot = _prepare(index, base, limits, nsjail)
                try:
                    yield slot
                finally:
                    _release(slot)
                return
            finally:
                os.close(fd)  # drops the lock
        if time.monotonic() > deadline:
            raise SlotError(f"all {settings.GRYPHGEN_SANDBOX_SLOTS} sandbox slots stayed busy for {wait_seconds:.0f} s")
        time.sleep(0.05)


def _prepare(index: int, base: Path, limits: dict, nsjail: Path) -> Slot:
    uid = settings.GRYPHGEN_SANDBOX_UID_BASE + index
    check_uid_is_free(uid)
    groups, version = _make_cgroups(index, limits)
    slot = Slot(index, uid, base / f"slot-{index}", groups, version)
    _connect_spawner(slot, base / f"slot-{index}.sock", nsjail)
    try:
        slot.kill_leftovers()  # a run whose worker died mid-way
        slot.root.mkdir(exist_ok=True, mode=0o700)
        _unmount(slot.root)
        _mount_tmpfs(slot.root, limits["workdir_mb"], limits["workdir_files"])
        for sub in ("work", "tmp"):
            (slot.root / sub).mkdir(mode=0o700)
            os.chown(slot.root / sub, uid, uid)
    except BaseException:
        slot.hang_up()
        raise
    return slot


def _release(slot: Slot) -> None:
    try:
        slot.kill_leftovers()
        _unmount(slot.root)
    finally:
        slot.hang_up()


_spawners = {}  # slot index -> the spawner this process started (kept so that it is reaped)
_spawners_lock = threading.Lock()


def _connect_spawner(slot: Slot, path: Path, nsjail: Path) -> None:
    """Connect to the slot's spawner, starting one if none answers or the one that answers is not
    in the slot's cgroups."""
    if len(bytes(path)) > 107:
        raise SlotError(f"the sandbox directory's path is too long for the slot's socket {path}; shorten GRYPHGEN_VAR")
    for attempt in range(2):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(path))
            pid, uid = slot_spawner.peer(conn)
        except OSError:
            pid = uid = -1
        if uid == 0 and slot.holds(pid):
            slot.spawner, slot.spawner_pid, slot.replies = conn, pid, conn.makefile("rb")
            return
        conn.close()
        if attempt == 0:
            _start_spawner(slot, path, nsjail)
    raise SlotError(f"the spawner of sandbox slot {slot.index} started but does not answer from its cgroups")


def _start_spawner(slot: Slot, path: Path, nsjail: Path) -> None:
    mark = f"gryphgen-{secrets.token_hex(8)}"
    argv = [sys.executable, "-I", "-S", str(SPAWNER), str(path), str(nsjail)]
    with _spawners_lock:
        for index, old in list(_spawners.items()):
            if old.poll() is not None:
                del _spawners[index]
        try:
            proc = subprocess.Popen(
                slot.entering_cgroups(argv, mark), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env={}, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise SlotError(f"the spawner of sandbox slot {slot.index} could not start: {exc}") from exc
        ready, _, _ = select.select([proc.stdout], [], [], SPAWNER_START_SECONDS)
        if ready and proc.stdout.readline() == b"ready\n":
            proc.stdout.close()
            proc.stderr.close()
            _spawners[slot.index] = proc
            return
        proc.kill()
        _, err = proc.communicate()
    err = err.decode(errors="replace")
    if proc.returncode == 125 and err.startswith(mark):  # the move into a cgroup failed: nothing ran
        raise SlotError(err.removeprefix(f"{mark}: ")[:600])
    raise SlotError(f"the spawner of sandbox slot {slot.index} did not start: {err[-600:]}")
