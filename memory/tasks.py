"""Embedding runs in the background: entries are stored first and embedded as soon as the
embedding server answers (right after the commit that created them, and on beat's schedule for
whatever an outage left behind)."""

import logging

from celery import shared_task

from memory import embeddings

log = logging.getLogger(__name__)


@shared_task(name="memory.embed_pending")
def embed_pending():
    done, reason = embeddings.embed_pending()
    if reason:
        log.warning("memory: embedded %d entries, the rest wait: %s", done, reason)
    return done
