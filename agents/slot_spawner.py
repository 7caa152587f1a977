"""A sandbox slot's spawner: a small root process that lives inside the slot's cgroups and forks
each run's jail there, so no run has to be moved into them.

Moving a process into a cgroup (v1, and v2 without CLONE_INTO_CGROUP) takes the kernel's
threadgroup lock for writing, which waits for an RCU grace period unless another move happened
moments before: 6 to 10 ms on a 2-core machine, paid by every run that follows a pause. A child
forked inside the groups starts there for nothing. The host moves this process in once (behind
`Slot.entering_cgroups`, so a move that fails still runs nothing) and it forks every run after.

Standard library only; started as `python -I -S slot_spawner.py SOCKET NSJAIL`. It prints
"ready" once it listens, then serves one run per connection, one connection at a time (the
slot's lock admits one run):

    host -> spawner  {"argv": [...]}, with the run's stdout and stderr as two file descriptors
    spawner -> host  {"pid": N} once the jail is forked, then {"status": wait status, "cpu_seconds": s}
                     or {"error": why} when it runs nothing

It runs only the nsjail binary it was started with, answers only root, gives its runs the
highest OOM score (so a run that fills the slot's memory is killed, never the spawner), and
exits once the process that started it is gone or another spawner has taken its socket.
"""

import json
import os
import select
import socket
import struct
import sys

REQUEST_BYTES = 64 * 1024


def main(path: str, nsjail: str) -> None:
    parent = os.getppid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.lexists(path):
        os.unlink(path)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(4)
    inode = os.stat(path).st_ino
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    while True:
        readable, _, _ = select.select([server], [], [], 1.0)
        if readable:
            conn, _ = server.accept()
            with conn:
                serve(conn, nsjail, devnull)
        elif os.getppid() != parent or not _owns(path, inode):
            return


def peer(conn: socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end of a Unix socket, as the kernel knows them."""
    pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid


def serve(conn: socket.socket, nsjail: str, devnull: int) -> None:
    if peer(conn)[1] != 0:
        return
    fds = []
    try:
        message, fds, _, _ = socket.recv_fds(conn, REQUEST_BYTES, 2)
        if not message:
            return  # the host gave the slot back without a run
        argv = json.loads(message)["argv"]
    except (OSError, ValueError, KeyError, TypeError):
        for fd in fds:
            os.close(fd)
        return
    if len(fds) != 2 or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or argv[:1] != [nsjail]:
        for fd in fds:
            os.close(fd)
        _send(conn, {"error": f"the spawner runs only {nsjail}, with its output as two file descriptors"})
        return
    pid = os.fork()
    if pid == 0:  # the run: its own session, the OOM killer's first choice, the host's pipes, no environment
        try:
            os.setsid()
            _oom_score_adj(1000)  # inherited by the whole jail and never lowered there (no capabilities)
            os.dup2(devnull, 0)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            os.closerange(3, 1 << 20)
            os.execve(argv[0], argv, {})
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    _send(conn, {"pid": pid})
    _, status, usage = os.wait4(pid, 0)  # reaped whether or not the host still listens
    _send(conn, {"status": status, "cpu_seconds": usage.ru_utime + usage.ru_stime})


def _send(conn: socket.socket, message: dict) -> bool:
    """False when the host has gone (its worker died mid-run): the run is reaped all the same."""
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        return False
    return True


def _owns(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except FileNotFoundError:
        return False


def _oom_score_adj(value: int) -> None:
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write(str(value))


if __name__ == "__main__":
    main(*sys.argv[1:3])
