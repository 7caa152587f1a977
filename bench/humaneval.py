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
import contextlib
import os
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from gryphgen_site import stack  # noqa: E402

BENCH_VAR = BASE / "var" / "bench-humaneval"


def point_at(var_dir: Path) -> None:
    """This process, and every service it starts, uses the private stack under `var_dir`."""
    os.environ.update(
        {
            **stack.isolated_environment(BASE, var_dir),
            "GRYPHGEN_LLM_URL": f"http://127.0.0.1:{stack.free_port()}",
            "GRYPHGEN_LARGE_LLM_URL": f"http://127.0.0.1:{stack.free_port()}",
            "GRYPHGEN_GENERATOR_TEMPERATURE": "0",
        }
    )


point_at(BENCH_VAR)


@contextlib.contextmanager
def private_stack(workers: int = 4, llm_parallel: int = 2):
    """The services under the var dir `point_at` chose (var/bench-humaneval/ unless another),
    migrated and with a worker answering pings."""
    var_dir = Path(os.environ["GRYPHGEN_VAR_DIR"])
    logs = var_dir / "log"
    stack.make_private(var_dir)
    threads = stack.shared_threads(2)  # both models served at once: each gets half the cores
    services = [
        stack.start_postgres(os.environ["DATABASE_URL"], var_dir / "pg", logs),
        stack.start_redis(os.environ["REDIS_URL"], var_dir / "redis", logs),
        *(
            stack.start_llama(url, Path(os.environ[path]), logs, name=name, parallel=llm_parallel, threads=threads)
            for name, url, path in (
                ("llama-server", os.environ["GRYPHGEN_LLM_URL"], "GRYPHGEN_MODEL_PATH"),
                ("llama-large", os.environ["GRYPHGEN_LARGE_LLM_URL"], "GRYPHGEN_LARGE_MODEL_PATH"),
            )
        ),
        stack.start_embedder(os.environ["GRYPHGEN_EMBED_URL"], Path(os.environ["GRYPHGEN_EMBED_MODEL_PATH"]), logs),
    ]
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from gryphgen_site.celery import app as celery_app

        call_command("migrate", verbosity=0)
        worker = stack.spawn(
            "celery-humaneval-worker",
            [sys.executable, "-m", "celery", "-A", "gryphgen_site", "worker", "-Q", settings.GRYPHGEN_WORKER_QUEUES,
             "--concurrency", str(workers), "--loglevel", "WARNING", "-n", "humaneval@%h"],
            logs, cwd=BASE,
        )  # fmt: skip
        services.append(worker)
        stack.wait_until(worker, lambda: bool(celery_app.control.ping(timeout=0.5)), "celery worker", 60)
        yield
    finally:
        for service in reversed(services):
            service.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--llm-parallel", type=int, default=2, help="llama-server slots")
    args, command_args = parser.parse_known_args()
    command_args = [a for a in command_args if a != "--"]
    with private_stack(args.workers, args.llm_parallel):
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
