import hashlib
import secrets

from django.conf import settings
from django.db import models

PREFIX = "gg_"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A program's key to one owner's projects. Only its SHA-256 is stored: the key is shown once."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses it, e.g. `ci`.")
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, owner, name: str) -> tuple["ApiToken", str]:
        """A new token and its key, which is never stored and cannot be shown again."""
        key = PREFIX + secrets.token_urlsafe(32)
        return cls.objects.create(owner=owner, name=name[:100], prefix=key[:10], key_hash=digest(key)), key
