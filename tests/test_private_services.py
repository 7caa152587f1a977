"""The embedded services are private to the install: PostgreSQL and Redis need the generated
passwords, which live in var/secrets/ (root only), and var/ lists nothing to other users."""

import os
import pwd
import stat
import subprocess
import urllib.request
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings

from gryphgen_site import stack
from gryphgen_site.local_secrets import local_secret, redacted
from tests import stack_env


def without_password(url):
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username or ''}@{parts.hostname}:{parts.port}".lstrip("@")).geturl()


def test_postgresql_refuses_a_connection_without_the_password():
    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url, connect_timeout=5) as conn:  # with it: in
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password(url), connect_timeout=5)
    wrong = url.replace(urlsplit(url).password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


def test_redis_refuses_commands_without_the_password():
    url = os.environ["REDIS_URL"]
    assert redis.Redis.from_url(url).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url.replace(f":{urlsplit(url).password}@", "")).ping()
    assert urlsplit(url).password not in " ".join(open(f"/proc/{pid}/cmdline").read() for pid in redis_pids())


def redis_pids():
    return [p for p in os.listdir("/proc") if p.isdigit() and "redis-server" in _cmdline(p)]


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline").read()
    except OSError:
        return ""


def test_secrets_and_var_are_private():
    var = stack_env.TEST_VAR
    assert stat.S_IMODE(var.stat().st_mode) == 0o711
    for sub in ("secrets", "log", "workspaces", "redis"):
        assert stat.S_IMODE((var / sub).stat().st_mode) == 0o700, sub
    assert stat.S_IMODE((var / "secrets" / "postgres").stat().st_mode) == 0o600
    assert local_secret(var, "postgres") == urlsplit(os.environ["DATABASE_URL"]).password  # generated once, reused
    assert settings.SECRET_KEY == local_secret(settings.VAR_DIR, "django") and len(settings.SECRET_KEY) >= 40


def test_urls_are_redacted_in_messages():
    url = os.environ["DATABASE_URL"]
    assert urlsplit(url).password not in redacted(url) and ":***@" in redacted(url)
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_fresh_postgresql_cluster_starts_with_a_password(tmp_path):
    """What a fresh clone does: initdb into an empty data dir, scram from the first start."""
    url = f"postgresql://postgres:fresh-secret@127.0.0.1:{stack.free_port()}/fresh"
    service = stack.start_postgres(url, tmp_path / "pg", tmp_path / "log")
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("fresh",)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(without_password(url), connect_timeout=5)
        assert not list((tmp_path / "pg").glob("*pwfile*")) and not list(tmp_path.glob(".pg-init-*"))
    finally:
        service.stop()


def uid_of(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def expected_uid(system_user):
    """Root's stack runs the service as its own system user; anyone else's, as themselves."""
    return pwd.getpwnam(system_user).pw_uid if os.geteuid() == 0 else os.geteuid()


def test_the_web_server_runs_unprivileged_and_serves_pages(transactional_db):
    from tests.helpers import database_url_for_processes

    port = stack.free_port()
    secrets = {
        "DATABASE_URL": database_url_for_processes(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "GRYPHGEN_SECRET_KEY": settings.SECRET_KEY,
    }
    service = stack.start_web(port, stack_env.TEST_VAR / "log", secrets, name="web-unprivileged-test")
    try:
        assert uid_of(service.process.pid) == expected_uid(stack.WEB_SYSTEM_USER)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=30) as response:
            assert response.status == 200 and b"password" in response.read().lower()
        if os.geteuid() == 0:  # it cannot read what only root may: the secrets, the workspaces
            probe = subprocess.run(
                ["cat", str(stack_env.TEST_VAR / "secrets" / "postgres")],
                user=stack.WEB_SYSTEM_USER, capture_output=True, text=True,
            )  # fmt: skip
            assert probe.returncode != 0 and "Permission denied" in probe.stderr
    finally:
        service.stop()


def test_llama_servers_run_unprivileged(smollm_url):
    port = f"--port\0{urlsplit(smollm_url).port}\0"
    ours = [p for p in os.listdir("/proc") if p.isdigit() and "llama-server" in _cmdline(p) and port in _cmdline(p)]
    assert len(ours) == 1
    assert uid_of(ours[0]) == expected_uid(stack.LLM_SYSTEM_USER)
