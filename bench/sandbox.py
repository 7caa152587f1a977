"""Sandbox benchmark: what isolation costs per run, and how many runs a host does per second.

Measured in one run, so the ratios hold on a noisy machine:
- start overhead: `python -c pass` in the sandbox vs the same interpreter started plainly;
- a verdict run (pytest over a small module and its tests) in the sandbox;
- runs/second of verdict runs with 1 and with 2 concurrent workers (threads, each claiming
  its own slot, as Celery's prefork children do).
Prints JSON and rewrites the sandbox section of docs/benchmarks.md.

    .venv/bin/python bench/sandbox.py [--runs 20] [--seconds 15]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gryphgen_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from agents import sandbox  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

CODE = {"solution.py": "def add(a, b):\n    return a + b\n"}
TESTS = {
    "test_add.py": "from solution import add\n\n\ndef test_small():\n    assert add(1, 2) == 3\n\n\n"
    "def test_negative():\n    assert add(-1, -2) == -3\n"
}


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(sorted(samples)[int(runs * 0.95) - 1], 1),
    }


def plain_python():
    python = settings.GRYPHGEN_SANDBOX_RUNTIME / "bin" / "python"
    subprocess.run([python, "-c", "pass"], check=True, env={})


def jailed_python():
    result = sandbox.run({}, [f"{sandbox.JAIL_RUNTIME}/bin/python", "-c", "pass"])
    assert result.status == "passed", result.stderr


def verdict_run():
    result = sandbox.run_tests(CODE, TESTS)
    assert result.status == "passed" and len(result.tests) == 2, result.stdout + result.stderr


def throughput(workers, seconds):
    done = []
    deadline = time.monotonic() + seconds

    def loop():
        while time.monotonic() < deadline:
            verdict_run()
            done.append(1)

    started = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(len(done) / (time.monotonic() - started), 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()

    verdict_run()  # warm the page cache
    plain = timed(plain_python, args.runs)
    jailed = timed(jailed_python, args.runs)
    verdict = timed(verdict_run, args.runs)
    one = throughput(1, args.seconds)
    two = throughput(2, args.seconds)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "runs": args.runs,
        "plain_python": plain,
        "sandboxed_python": jailed,
        "start_overhead_ms": round(jailed["median_ms"] - plain["median_ms"], 1),
        "start_ratio": round(jailed["median_ms"] / plain["median_ms"], 2),
        "verdict_run": verdict,
        "runs_per_second_1_worker": one,
        "runs_per_second_2_workers": two,
        "scaling_2_vs_1": round(two / one, 2),
    }
    print(json.dumps(result, indent=2))
    if not args.no_doc:
        write_doc(result)


def write_doc(r):
    write_section(
        "sandbox",
        f"""## Sandbox (`bench/sandbox.py`)

{r["date"]}, {r["machine"]}; medians of {r["runs"]} runs each, all in one run. Command: `.venv/bin/python bench/sandbox.py`.

| what | median ms | p95 ms |
|---|---|---|
| `python -c pass`, plain | {r["plain_python"]["median_ms"]} | {r["plain_python"]["p95_ms"]} |
| `python -c pass`, sandboxed | {r["sandboxed_python"]["median_ms"]} | {r["sandboxed_python"]["p95_ms"]} |
| verdict run (pytest, 2 tests), sandboxed | {r["verdict_run"]["median_ms"]} | {r["verdict_run"]["p95_ms"]} |

Isolation costs {r["start_overhead_ms"]} ms per run ({r["start_ratio"]}× a plain start): slot claim, tmpfs
mount, cgroup set-up, nsjail's namespaces and mounts, and the clean-up. Verdict runs per second:
{r["runs_per_second_1_worker"]} with one worker, {r["runs_per_second_2_workers"]} with two
({r["scaling_2_vs_1"]}× on this machine's cores).
""",
    )


if __name__ == "__main__":
    main()
