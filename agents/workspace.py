"""Each project's workspace: a git repository holding its accepted code, one commit per checkpoint."""

import subprocess
from pathlib import Path

from agents.sandbox import check_path

GIT_IDENTITY = ["-c", "user.name=GRYPHGEN", "-c", "user.email=gryphgen@localhost"]


class WorkspaceError(RuntimeError):
    pass


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise WorkspaceError(f"git {args[0]} failed: {result.stderr.strip()[:500]}")
    return result.stdout.strip()


def ensure_repo(repo: Path) -> None:
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")


def commit_checkpoint(repo: Path, checkpoint) -> str:
    """Commit the checkpoint's files; running twice returns the first commit."""
    ensure_repo(repo)
    marker = f"Checkpoint-Id: {checkpoint.pk}"
    if _has_commits(repo):
        found = git(repo, "log", "--format=%H", "--fixed-strings", f"--grep={marker}")
        if found:
            return found.splitlines()[0]
    for name, source in checkpoint.files.items():
        target = repo / check_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    git(repo, "add", "-A")
    task = checkpoint.task
    message = f"Task {task.pk}, round {checkpoint.round}: {task.request.splitlines()[0][:60]}\n\n{marker}"
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _has_commits(repo: Path) -> bool:
    return subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=repo, capture_output=True).returncode == 0
