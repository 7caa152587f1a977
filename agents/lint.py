"""The Code Analyzer's static half: ruff on the generated source, read from stdin (nothing is
executed). Findings are dicts the analyzer step stores on the checkpoint."""

import json
import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def check(files):
    """ruff's errors (E9, F) in each .py file of `files`: [{severity, code, message, line, file}]."""
    ruff = Path(sys.executable).with_name("ruff")
    findings = []
    for name, source in files.items():
        if not name.endswith(".py"):
            continue
        result = subprocess.run(
            [ruff, "check", "--isolated", "--no-cache", "--select", "E9,F", "--output-format", "json",
             "--stdin-filename", name, "-"],
            input=source, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        try:
            items = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            log.warning("ruff gave no JSON: %s", result.stderr[:200])
            continue
        for item in items:
            findings.append(
                {
                    "severity": "error" if item["code"] and item["code"].startswith(("E9", "F8")) else "warning",
                    "code": item["code"] or "syntax",
                    "message": item["message"][:200],
                    "line": item["location"]["row"],
                    "file": name,
                }
            )
    return findings
