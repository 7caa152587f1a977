"""The safety review's rules: what it blocks, warns about and lets through (pure: nothing runs)."""

import pytest

from agents import safety_review


@pytest.mark.parametrize(
    "source, rule",
    [
        ("import subprocess\n", "import"),
        ("from subprocess import run as go\n", "import"),
        ("import os as o\no.system('ls')\n", "call"),
        ("import os\nos.execv('/bin/sh', ['sh'])\n", "call"),
        ("import urllib.request\n", "import"),
        ("__import__('socket')\n", "import"),
        ("import shutil\nshutil.rmtree('/home')\n", "delete"),
        ("import os\nos.remove('../outside.txt')\n", "delete"),
        ("import os\nkey = os.environ['GRYPHGEN_SECRET_KEY']\n", "secret"),
        ("import os\nkey = os.getenv('OPENAI_API_KEY')\n", "secret"),
        ("TOKEN = 'ghp_" + "a" * 36 + "'\n", "secret"),
    ],
)
def test_safety_monitor_blocks_dangerous_code(source, rule):
    review = safety_review.review({"solution.py": source})
    assert review.blocked and rule in {f["rule"] for f in review.findings}, review.findings
    assert "solution.py:" in review.reasons()


def test_safety_monitor_lets_ordinary_code_through():
    source = (
        "import os\nimport shutil\nimport re\n\n\ndef f(path):\n    shutil.rmtree('build', ignore_errors=True)\n"
        "    return os.path.join(path, re.sub('a', 'b', os.environ.get('HOME', '')))\n"
    )
    review = safety_review.review({"solution.py": source, "broken.py": "def (:\n"})
    assert not review.blocked and review.findings == []
    warned = safety_review.review({"solution.py": "def f(code):\n    return eval(code)\n"})
    assert not warned.blocked and warned.findings[0]["rule"] == "eval"
