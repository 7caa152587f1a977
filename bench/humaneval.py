"""HumanEval on a private stack: `manage.py gryphgen bench humaneval` without a running product.

Starts its own PostgreSQL, Redis, two llama-servers (the bundled Qwen2.5-Coder-0.5B and 1.5B,
generator temperature 0), the embedding llama-server (for `--memory`) and a Celery worker under
var/bench-humaneval/ (kept between runs, so `--resume` finds its tasks), runs the management
command with the arguments given, then stops them all.

    .venv/bin/python bench/humaneval.py --mode single,single@large,consensus --split dev --doc
    .venv/bin/python bench/humaneval.py --mode single,consensus --suite owner --split test --doc
    .venv/bin/python bench/humaneval.py --workers 4 -- --mode pipeline --split test --limit 40 --resume
"""

import argparse
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from benchmarks.stack import private_stack  # noqa: E402

BENCH_VAR = BASE / "var" / "bench-humaneval"  # shared with memory_effect, consensus_replay, monitor_accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--llm-parallel", type=int, default=2, help="llama-server slots")
    args, command_args = parser.parse_known_args()
    command_args = [a for a in command_args if a != "--"]
    with private_stack(BENCH_VAR, workers=args.workers, llm_parallel=args.llm_parallel):
        from django.core.management import call_command
        from django.core.management.base import CommandError

        try:
            call_command("gryphgen", "bench", "humaneval", *command_args)
        except CommandError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
