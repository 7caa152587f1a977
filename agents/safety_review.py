"""The safety review: generated code is read before it runs or deploys (a workflow step's check, in
the execute and deploy steps and before memory's code is reused).

An extra layer, never a replacement for the sandbox: it reads the source (AST and a few secret
patterns; nothing is executed) and blocks what has no business in generated code here: running
programs, opening network connections, loading native code, deleting files outside the work
dir, reading or embedding secrets. A block carries its reasons, which the owner sees and the
generator's repair prompt receives. The safety monitor (guardians.safety) reports on every
review through `agents.signals.code_reviewed`.
"""

import ast
import re
from dataclasses import dataclass, field

from agents import pysource

# a refused run's stderr starts with it: how the diagnostician tells a block from a crash
BLOCKED_MARK = "blocked by the safety monitor"
BLOCKED_MODULES = {
    "subprocess": "runs other programs",
    "pty": "runs other programs",
    "socket": "opens network connections",
    "ssl": "opens network connections",
    "urllib.request": "opens network connections",
    "http.client": "opens network connections",
    "ftplib": "opens network connections",
    "smtplib": "opens network connections",
    "telnetlib": "opens network connections",
    "requests": "opens network connections",
    "httpx": "opens network connections",
    "aiohttp": "opens network connections",
    "ctypes": "loads native code",
    "cffi": "loads native code",
}
BLOCKED_CALLS = {
    "os.system": "runs a shell command",
    "os.popen": "runs a shell command",
    "os.fork": "forks the process",
    "os.kill": "signals other processes",
    "os.killpg": "signals other processes",
    "os.setuid": "changes its user",
    "os.chroot": "changes its root",
}
BLOCKED_PREFIXES = {"os.exec": "replaces the process with another program", "os.spawn": "runs other programs"}
DELETING_CALLS = {"os.remove", "os.unlink", "os.rmdir", "os.removedirs", "shutil.rmtree", "shutil.move"}
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|API_?KEY|CREDENTIAL|PRIVATE", re.I)
SECRET_VALUES = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"\bsk-[A-Za-z0-9]{20,}\b"), "an API key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "a GitHub token"),
]


@dataclass
class Review:
    findings: list = field(default_factory=list)  # [{"severity": block|warn, "rule", "file", "line", "message"}]

    @property
    def blocked(self):
        return any(f["severity"] == "block" for f in self.findings)

    def reasons(self):
        return "; ".join(f"{f['file']}:{f['line']}: {f['message']}" for f in self.findings if f["severity"] == "block")


def review(files: dict) -> Review:
    """Review each generated module; a file that does not parse is left to the tests to reject."""
    review = Review()
    for name, source in sorted(files.items()):
        for pattern, what in SECRET_VALUES:
            if match := pattern.search(source):
                line = source.count("\n", 0, match.start()) + 1
                review.findings.append(_finding("block", "secret", name, line, f"embeds {what}"))
        try:
            tree = pysource.parse(source, name)
        except SyntaxError:
            continue
        review.findings += _Visitor(name).visit_all(tree)
    return review


def _finding(severity, rule, file, line, message):
    return {"severity": severity, "rule": rule, "file": file, "line": line, "message": message}


class _Visitor(ast.NodeVisitor):
    def __init__(self, name):
        self.name = name
        self.aliases = {}  # local name -> dotted module or function it stands for
        self.findings = []

    def visit_all(self, tree):
        self.visit(tree)
        return self.findings

    def add(self, severity, rule, node, message):
        self.findings.append(_finding(severity, rule, self.name, getattr(node, "lineno", 0), message))

    def check_module(self, node, module):
        for blocked, why in BLOCKED_MODULES.items():
            if module == blocked or module.startswith(blocked + "."):
                self.add("block", "import", node, f"imports {module}, which {why}")

    def visit_Import(self, node):
        for alias in node.names:
            self.check_module(node, alias.name)
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )

    def visit_ImportFrom(self, node):
        module = node.module or ""
        self.check_module(node, module)
        for alias in node.names:
            self.check_module(node, f"{module}.{alias.name}")
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    def dotted(self, node):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return ""
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def visit_Call(self, node):
        name = self.dotted(node.func)
        if name in BLOCKED_CALLS:
            self.add("block", "call", node, f"calls {name}, which {BLOCKED_CALLS[name]}")
        for prefix, why in BLOCKED_PREFIXES.items():
            if name.startswith(prefix):
                self.add("block", "call", node, f"calls {name}, which {why}")
        if name in ("__import__", "importlib.import_module") and node.args:
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                self.check_module(node, target.value)
            else:
                self.add("warn", "dynamic_import", node, f"imports a module chosen at run time ({name})")
        if name in ("eval", "exec") and node.args and not isinstance(node.args[0], ast.Constant):
            self.add("warn", "eval", node, f"runs code built at run time ({name})")
        if name in DELETING_CALLS and node.args and _outside_workdir(node.args[0]):
            self.add("block", "delete", node, f"calls {name} on a path outside its work dir")
        if name in ("os.getenv", "os.environ.get") and node.args and _secret_name(node.args[0]):
            self.add("block", "secret", node, f"reads the secret {node.args[0].value!r} from the environment")
        self.generic_visit(node)

    def visit_Subscript(self, node):
        if self.dotted(node.value) == "os.environ" and _secret_name(node.slice):
            self.add("block", "secret", node, f"reads the secret {node.slice.value!r} from the environment")
        self.generic_visit(node)


def _secret_name(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(SECRET_NAMES.search(node.value))


def _outside_workdir(node):
    """A path argument that is absolute, climbs out, or is not a literal we can check."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith(("/", "~")) or ".." in node.value.split("/")
    return False
