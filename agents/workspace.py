"""Each project's workspace on disk, under `GRYPHGEN_WORKSPACES_DIR/project-N/`:

    repo/            git repository; branch `main` gets one commit per accepted checkpoint,
                     built in a temporary index (no working tree is written),
                     ref `refs/heads/deployed` points at what is deployed
    releases/<sha>/  the tree of each deployed commit, exported once, never changed
    deployed         symlink to releases/<sha>, swapped atomically with the ref

Every change holds the project's lock (`flock` on `.lock`), so two tasks of one project never
interleave git commands. Files reach git only through `code_gate.code_files` (no `.git/...`
path, no dot-directory), and git runs with hooks, fsmonitor and the system and global
configuration off, so no file in a repository makes git run a command. Nothing here runs the code.
"""

import contextlib
import fcntl
import io
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from agents import code_gate

# Every git command: our identity, no hooks and no fsmonitor whatever a repository's config says,
# no system or global configuration, never a prompt.
GIT = ["git", "-c", "user.name=GRYPHGEN", "-c", "user.email=gryphgen@localhost", "-c", "core.hooksPath=/dev/null",
       "-c", "core.fsmonitor=false"]  # fmt: skip
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}
DEPLOYED_REF = "refs/heads/deployed"
MAIN_REF = "refs/heads/main"
STALE_LOCK_SECONDS = 60
log = logging.getLogger(__name__)


class WorkspaceError(RuntimeError):
    pass


def run_git(cwd: Path, *args: str, env=None, stdin: str | None = None, text: bool = True):
    """The one way git is started: GIT's options, GIT_ENV; the completed process, unchecked."""
    return subprocess.run(
        [*GIT, *args], cwd=cwd, capture_output=True, text=text, input=stdin,
        env={**os.environ, **GIT_ENV, **(env or {})},
    )  # fmt: skip


def git(cwd: Path, *args: str, env=None, stdin: str | None = None) -> str:
    result = run_git(cwd, *args, env=env, stdin=stdin)
    if result.returncode != 0:
        raise WorkspaceError(f"git {args[0]} failed: {result.stderr.strip()[:500]}")
    return result.stdout.strip()


@contextlib.contextmanager
def locked(workspace: Path):
    workspace.mkdir(parents=True, exist_ok=True)
    with open(workspace / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def repo_of(workspace: Path) -> Path:
    repo = workspace / "repo"
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    return repo


def main_files(workspace: Path) -> dict:
    """{path: source} of the tip of `main`: the code later checkpoints build on (read from git's
    objects with one `git archive`; the repository has no working tree that matters)."""
    repo = repo_of(workspace)
    try:
        archive = _archive(repo, MAIN_REF)
    except WorkspaceError:
        if not _resolve(repo, MAIN_REF):
            return {}  # nothing committed yet
        raise
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {
            member.name: tar.extractfile(member).read().decode("utf-8", errors="replace")
            for member in tar.getmembers()
            if member.isfile()
        }


def clear_stale_locks(repo: Path) -> list:
    """Remove git lock files a crashed process left behind. Called under the project's lock, so no
    GRYPHGEN process is using them; one younger than STALE_LOCK_SECONDS may be a person's git and stays."""
    removed = []
    for name in ("index.lock", "HEAD.lock", "packed-refs.lock", "refs/heads/main.lock", "refs/heads/deployed.lock"):
        lock = repo / ".git" / name
        with contextlib.suppress(FileNotFoundError):
            if time.time() - lock.lstat().st_mtime > STALE_LOCK_SECONDS:
                lock.unlink()
                removed.append(name)
                log.warning("removed the stale git lock %s", lock)
    return removed


def commit_checkpoint(workspace: Path, checkpoint) -> tuple[str, str]:
    """Commit the checkpoint's files over the tip of `main`: (commit, its tree); running twice
    returns the first commit.

    The commit is built in a temporary index from git's objects, and `main` moves with a
    compare-and-swap: a failure at any point leaves nothing behind for the next commit to pick up."""
    repo = repo_of(workspace)
    clear_stale_locks(repo)
    marker = f"Checkpoint-Id: {checkpoint.pk}"
    head = _resolve(repo, MAIN_REF)
    if head:
        found = git(repo, "log", "--format=%H %T", "--fixed-strings", f"--grep={marker}", MAIN_REF)
        if found:
            commit, tree = found.splitlines()[0].split()
            return commit, tree
    try:
        files = code_gate.code_files(checkpoint.files)
    except code_gate.Refused as exc:
        raise WorkspaceError(f"checkpoint {checkpoint.pk} is not committed: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="gryphgen-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if head:
            git(repo, "read-tree", head, env=env)
        for name, source in files.items():
            blob = git(repo, "hash-object", "-w", "--stdin", stdin=source)
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
        tree = git(repo, "write-tree", env=env)
    task = checkpoint.task
    message = f"Task {task.pk}, checkpoint {checkpoint.pk} (round {checkpoint.round}): "
    message += f"{task.request.splitlines()[0][:60]}\n\n{marker}\n"
    commit = git(repo, "commit-tree", tree, *(["-p", head] if head else []), "-F", "-", stdin=message)
    git(repo, "update-ref", "-m", "gryphgen commit", MAIN_REF, commit, head or "0" * 40)
    return commit, tree


def deployed_commit(workspace: Path) -> str:
    return _resolve(repo_of(workspace), DEPLOYED_REF)


def move_deployed(workspace: Path, commit: str, expected: str) -> None:
    """Point `deployed` (ref and checked-out tree) at `commit`, if it still points at `expected`.

    The release tree is exported first, so a failure leaves the old deployment whole; the ref
    moves with a compare-and-swap; the `deployed` symlink is replaced with one rename.
    """
    repo = repo_of(workspace)
    release = export_release(workspace, commit)
    if expected != commit:
        git(repo, "update-ref", "-m", "gryphgen deploy", DEPLOYED_REF, commit, expected or "0" * 40)
    link = workspace / "deployed"
    temp = workspace / f".deployed-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    temp.symlink_to(release.relative_to(workspace))
    os.replace(temp, link)


def clear_deployed(workspace: Path, expected: str) -> None:
    """Undo a first deployment: drop `deployed` (ref and link) if it still points at `expected`."""
    git(repo_of(workspace), "update-ref", "-d", DEPLOYED_REF, expected)
    with contextlib.suppress(FileNotFoundError):
        (workspace / "deployed").unlink()


def export_release(workspace: Path, commit: str) -> Path:
    release = workspace / "releases" / commit
    if release.is_dir():
        return release
    release.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=release.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(_archive(repo_of(workspace), commit))) as tar:
            tar.extractall(staging, filter="data")
        os.rename(staging, release)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return release


def checked_out_tree(workspace: Path) -> str:
    """The git tree hash of what `deployed` shows on disk right now (computed, not remembered)."""
    repo = repo_of(workspace)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(
            (workspace / "deployed").resolve(), f"--git-dir={repo / '.git'}", "--work-tree=.", "add", "-A", ".", env=env
        )
        return git(repo, "write-tree", env=env)


def _archive(repo: Path, commit: str) -> bytes:
    """The tree of `commit` as a tar archive."""
    result = run_git(repo, "archive", "--format=tar", commit, text=False)
    if result.returncode != 0:
        raise WorkspaceError(f"git archive failed: {result.stderr.decode(errors='replace').strip()[:300]}")
    return result.stdout


def _resolve(repo: Path, ref: str) -> str:
    result = run_git(repo, "rev-parse", "-q", "--verify", ref)
    return result.stdout.strip() if result.returncode == 0 else ""
