"""The one gate for files: every file that reaches the sandbox or a project's repository passes here.

Code (generated, repaired, reused from memory, integrated, deployed) must pass `code_files`; the
verdict tests and the host's own harness files pass `check_path`, the rules every file name in a
work dir obeys. Nothing here executes anything.
"""

from pathlib import PurePosixPath

# Names the test runner or the interpreter picks up by themselves: a module by one of these names
# would run inside pytest, or instead of it, and could forge the verdict.
RUNNER_NAMES = frozenset(
    "conftest.py pytest.py py.py sitecustomize.py usercustomize.py pytest.ini pyproject.toml setup.cfg tox.ini".split()
)
RUNNER_PACKAGES = frozenset({"_pytest", "pytest", "pluggy", "py", "iniconfig", "packaging"})
MAX_FILES = 20
MAX_FILE_CHARS = 200_000
MAX_TOTAL_CHARS = 500_000


class Refused(ValueError):
    """A file the gate does not let through; the message says which and why."""


def check_path(name) -> PurePosixPath:
    """A file name a work dir may hold: relative, inside it, no dot-directories (`.git`), nothing the
    test runner would load by itself."""
    if not isinstance(name, str) or not name:
        raise Refused(f"file path {name!r} is empty or not text")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or any(ord(c) < 32 for c in name):
        raise Refused(f"file path {name!r} escapes the work dir")
    if any(part.startswith(".") for part in path.parts) or "//" in name:
        raise Refused(f"file path {name!r} names a hidden file or directory (such as .git)")
    if (
        path.name in RUNNER_NAMES
        or path.parts[0] in RUNNER_PACKAGES
        or path.parts[0].removesuffix(".py") in RUNNER_PACKAGES
    ):
        raise Refused(f"file name {name!r} is reserved by the test runner")
    return path


def is_test_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("test_") or base.endswith("_test.py")


def code_files(files) -> dict:
    """`files` ({path: source}) checked as code: Python modules only, no test files (the code never
    certifies itself), within the count and size limits. Returns a copy; raises Refused."""
    if not isinstance(files, dict) or not files:
        raise Refused("there is no code: expected at least one Python module")
    if len(files) > MAX_FILES:
        raise Refused(f"{len(files)} files is more than the {MAX_FILES} a task may hold")
    total = 0
    for name, source in files.items():
        check_path(name)
        if not name.endswith(".py"):
            raise Refused(f"file {name!r} is not a Python module (.py)")
        if is_test_file(name):
            raise Refused(f"file {name!r} is a test file: only the verdict tests may be tests")
        if not isinstance(source, str) or "\x00" in source:
            raise Refused(f"file {name!r} is not text (it holds a NUL byte or is not a string)")
        if len(source) > MAX_FILE_CHARS:
            raise Refused(f"file {name!r} has {len(source):,} characters; the limit is {MAX_FILE_CHARS:,}")
        total += len(source)
    if total > MAX_TOTAL_CHARS:
        raise Refused(f"the files hold {total:,} characters together; the limit is {MAX_TOTAL_CHARS:,}")
    return dict(files)
