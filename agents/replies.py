"""Reading a generator's reply: its modules, checked, with forgotten standard-library imports added.

Nothing here executes the code: it is split, parsed and inspected as text and syntax trees.
"""

import ast
import re

from agents import code_gate, pysource

FILE_HEADER = re.compile(r"^#\s*file:\s*(\S+)\s*$", re.I)
MODULE_NAME = re.compile(r"^[A-Za-z_]\w*\.py$")  # a plain module in the work dir


def extract_files(text):
    """The modules of a generator reply: ({path: source}, "") or ({...}, why they are unusable).

    A reply is one ```python block (it becomes solution.py) or several, each opening with a
    `# file: path.py` line; solution.py is the module the verdict tests import. Test files the
    generator writes are dropped: the code never certifies itself.
    """
    parts = text.split("```")
    blocks = []
    for body in parts[1:-1:2] if len(parts) >= 3 else []:
        first, _, rest = body.partition("\n")
        if first.strip().lower() in ("python", "py", "python3", ""):
            blocks.append(rest.strip("\n"))
    named, unnamed = {}, []
    for block in blocks:
        first, _, rest = block.partition("\n")
        if match := FILE_HEADER.match(first.strip()):
            named[match.group(1)] = rest.strip("\n") + "\n"
        elif block.strip():
            unnamed.append(block.strip() + "\n")
    if "solution.py" not in named and unnamed:
        named["solution.py"] = max(unnamed, key=len)
    modules = [name for name in named if not _is_test_file(name)]
    if "solution.py" not in named and len(modules) == 1 and MODULE_NAME.match(modules[0]):  # `# file: slugify.py`
        named["solution.py"] = named.pop(modules[0])
    files = {name: source for name, source in named.items() if not _is_test_file(name)}
    if not files:
        return {}, "The model's reply had no ```python code block."
    try:
        code_gate.code_files(files)
    except code_gate.Refused as exc:
        return files, f"The generated code is not allowed: {exc}"
    for name, source in files.items():
        try:
            pysource.parse(source, name)
        except SyntaxError as exc:
            return files, f"{name} is not valid Python: line {exc.lineno}: {exc.msg}"
        files[name] = with_missing_imports(source)
    if "solution.py" not in files:
        return files, "The reply has no solution.py, the module the verdict tests import."
    return files, ""


def _is_test_file(name):
    return code_gate.is_test_file(name) or name.rsplit("/", 1)[-1] == "conftest.py"


# Modules a small model often uses without importing (`re.sub` with no `import re`), and typing names.
STDLIB_MODULES = frozenset(
    "re math string collections itertools functools heapq bisect datetime json random statistics "
    "operator fractions decimal hashlib copy calendar textwrap unicodedata".split()
)
TYPING_NAMES = frozenset("List Dict Tuple Set Optional Any Union Callable Iterable Iterator Sequence".split())


def with_missing_imports(source: str) -> str:
    """`source` with an import for each standard-library module or typing name it uses but never
    binds. Only names that are read and bound nowhere in the module count."""
    try:
        tree = pysource.parse(source)
    except SyntaxError:
        return source
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    missing = read - bound
    lines = [f"import {name}" for name in sorted(missing & STDLIB_MODULES)]
    if typing := sorted(missing & TYPING_NAMES):
        lines.append(f"from typing import {', '.join(typing)}")
    return "\n".join(lines) + "\n" + source if lines else source
