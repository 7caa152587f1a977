"""One gate for every file of code: generated, repaired, reused from memory and committed code
obey the same rules, and git never runs a command a file in a repository asks for."""

import subprocess
from types import SimpleNamespace

import pytest

from agents import sandbox, workspace


def test_the_sandbox_refuses_hostile_names_before_anything_runs():
    result = sandbox.run_tests({"pytest.py": "import os\nos._exit(0)\n"}, {"test_a.py": "def test_x():\n    pass\n"})
    assert result.status == "refused" and "reserved by the test runner" in result.stderr
    result = sandbox.run({".git/config": "[core]\n"}, ["/runtime/bin/python", "-c", "pass"])
    assert result.status == "refused" and "hidden" in result.stderr


def test_git_ignores_hooks_and_fsmonitor_in_a_repository(tmp_path):
    """Even a repository whose config asks for an fsmonitor command and a hook runs neither."""
    space = tmp_path / "project"
    repo = workspace.repo_of(space)
    pwned = tmp_path / "pwned"
    subprocess.run(["git", "config", "core.fsmonitor", f"touch {pwned}-fsmonitor #"], cwd=repo, check=True)
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-commit").write_text(f"#!/bin/sh\ntouch {pwned}-hook\n")
    (hooks / "pre-commit").chmod(0o755)
    checkpoint = SimpleNamespace(
        pk=7, round=1, files={"solution.py": "x = 1\n"}, task=SimpleNamespace(pk=3, request="a request")
    )
    commit, tree = workspace.commit_checkpoint(space, checkpoint)
    assert len(commit) == 40 and len(tree) == 40
    assert not list(tmp_path.glob("pwned*"))


def test_a_checkpoint_with_a_hostile_path_is_not_committed(tmp_path):
    checkpoint = SimpleNamespace(
        pk=8, round=1, files={".git/config": "[core]\n"}, task=SimpleNamespace(pk=3, request="a request")
    )
    with pytest.raises(workspace.WorkspaceError, match="not committed"):
        workspace.commit_checkpoint(tmp_path / "project", checkpoint)
