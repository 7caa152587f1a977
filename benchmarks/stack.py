"""The private stack a benchmark runs on: PostgreSQL, Redis, llama-servers, the embedder, a Celery worker.

Everything lives under the benchmark's own var dir (`var/bench-*/`) on free loopback ports, so a
benchmark never touches the product's data or another benchmark's. No Django imports at module
level: `private_stack` points this process's environment at the stack before Django reads its
settings.
"""

import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

from gryphgen_site import stack

BASE = Path(__file__).resolve().parent.parent


def point_at(var_dir: Path, models: tuple = ("small", "large"), env: dict | None = None) -> None:
    """This process, and every service it starts, uses the private stack under `var_dir`: its own
    ports, a URL for each of `models`, the generator at temperature 0, and `env` on top."""
    os.environ.update(
        {
            **stack.isolated_environment(BASE, var_dir),
            **{stack.MODEL_VARIABLES[model][0]: f"http://127.0.0.1:{stack.free_port()}" for model in models},
            "GRYPHGEN_GENERATOR_TEMPERATURE": "0",
            **(env or {}),
        }
    )


@contextlib.contextmanager
def private_stack(
    var_dir: Path,
    *,
    fresh: bool = False,
    redis: bool = True,
    models: tuple = ("small", "large"),
    llm_parallel: int = 2,
    llm_extra_args: tuple = (),
    embedder: bool = True,
    embed_threads: int = 1,
    workers: int = 4,
    env: dict | None = None,
):
    """Start the services under `var_dir` (removed first if `fresh`), set Django up and migrate; yield
    the services by name; stop them all on the way out.

    PostgreSQL always; Redis unless `redis=False`; a llama-server per model of `models` with
    `llm_parallel` slots (the cores shared out among them); the embedding server with
    `embed_threads` threads if `embedder`; a Celery worker with `workers` processes unless 0. A
    SIGTERM (a kill, a time limit) exits through here too, so the services never outlive the run.
    """
    var_dir = Path(var_dir)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if fresh:
            if pid := running_postgres(var_dir):
                raise SystemExit(f"{var_dir} is in use: its PostgreSQL (pid {pid}) is running; stop that run first")
            shutil.rmtree(var_dir, ignore_errors=True)
        point_at(var_dir, models, env)
        with stack.services(
            var_dir, redis=redis, models=models, llm_parallel=llm_parallel, llm_extra_args=llm_extra_args,
            embedder=embedder, embed_threads=embed_threads,
        ) as services:  # fmt: skip
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            if workers:  # started last, so `services` stops it first
                services["celery-worker"] = stack.start_worker(
                    var_dir / "log", concurrency=workers, hostname=f"{var_dir.name}@%h"
                )
            yield services
    finally:
        signal.signal(signal.SIGTERM, previous)


def running_postgres(var_dir: Path) -> int | None:
    """The pid of a live PostgreSQL serving `var_dir`'s data directory, if one is running."""
    try:
        pid = int((var_dir / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid
