"""The embedded services are private to the install: PostgreSQL and Redis need the generated
passwords, which live in var/secrets/ (root only), and var/ lists nothing to other users."""

import os
import stat
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings

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
