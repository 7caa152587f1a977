"""Secrets generated once per install and kept under `var/secrets/` (0700, each file 0600).

The embedded PostgreSQL's password, the embedded Redis's password and Django's secret key come
from here unless the environment names its own, so a fresh install is private to root without
any configuration: no other local user can read them, reach the database or queue work.
"""

import os
import secrets
from pathlib import Path


def local_secret(var_dir: Path, name: str) -> str:
    """The secret `name` of this install, generated on first use."""
    folder = Path(var_dir) / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))  # URL-safe: it goes into DATABASE_URL and REDIS_URL as is
    return path.read_text().strip()


def redacted(url: str) -> str:
    """`url` with its password replaced, for messages and logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
