"""The code gate's rules on file names and contents, and the parsers that feed it (nothing runs)."""

import pytest

from agents import code_gate, prompts, replies, reuse

HOSTILE_NAMES = [
    ".git/config",
    ".git/hooks/post-commit.py",
    "pkg/.hidden/mod.py",
    ".env.py",
    "pytest.py",
    "conftest.py",
    "sub/conftest.py",
    "sitecustomize.py",
    "usercustomize.py",
    "_pytest/python.py",
    "pluggy/__init__.py",
    "../escape.py",
    "/etc/passwd.py",
    "a\\b.py",
    "nul\x00.py",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_as_code(name):
    with pytest.raises(code_gate.Refused):
        code_gate.code_files({name: "x = 1\n"})


@pytest.mark.parametrize(
    "files, reason",
    [
        ({"notes.txt": "hello\n"}, "not a Python module"),
        ({"test_mine.py": "def test_x():\n    pass\n"}, "test file"),
        ({"solution.py": "x = '\x00'\n"}, "NUL"),
        ({"solution.py": "x = 1\n" * 40_000}, "limit"),
        ({f"m{i}.py": "x = 1\n" for i in range(code_gate.MAX_FILES + 1)}, "more than"),
        ({}, "no code"),
    ],
)
def test_code_must_be_bounded_python_modules_and_never_tests(files, reason):
    with pytest.raises(code_gate.Refused, match=reason):
        code_gate.code_files(files)


def test_ordinary_code_and_the_harness_files_pass():
    files = {"solution.py": "def f():\n    return 1\n", "helpers/text.py": "X = 1\n"}
    assert code_gate.code_files(files) == files
    for name in ("test_example_01.txt", "test_monitor.py", "gryphgen_probe.json", "c3/solution.py"):
        assert str(code_gate.check_path(name)) == name


@pytest.mark.parametrize("name", ["pytest.py", ".git/config.py", "sitecustomize.py", "_pytest/__init__.py"])
def test_a_generated_file_that_would_shadow_the_runner_or_reach_git_is_refused(name):
    reply = f"```python\n# file: {name}\nimport os\n```\n\n```python\n# file: solution.py\ndef f():\n    return 1\n```"
    files, error = replies.extract_files(reply)
    assert "not allowed" in error and name in error


def test_a_memory_entry_holding_a_git_config_block_is_not_reused():
    """An edited memory entry is text: its `# file: .git/config` block must never reach a repository."""
    code = prompts.code_block(
        {"solution.py": "def f():\n    return 1\n", ".git/config": "[core]\n\tfsmonitor = touch /tmp/pwned\n"}
    )
    assert reuse.remembered_files(code, "f", "f") is None
    assert reuse.remembered_files(prompts.code_block({"solution.py": "def f():\n    return 1\n"}), "f", "f")
