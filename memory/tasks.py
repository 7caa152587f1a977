"""Embedding runs in the background: entries are stored first and embedded as soon as the
embedding server answers (right after the commit that created them, and on beat's schedule for
whatever an outage left behind)."""

import logging

from celery import shared_task

from memory import embeddings, owner_indexes

log = logging.getLogger(__name__)


@shared_task(name="memory.embed_pending")
def embed_pending():
    done, reason = embeddings.embed_pending()
    if reason:
        log.warning("memory: embedded %d entries, the rest wait: %s", done, reason)
    return done


@shared_task(name="memory.refresh_owner_indexes")
def refresh_owner_indexes():
    """Owners' own HNSW indexes follow their sizes (memory.owner_indexes)."""
    outcome = owner_indexes.refresh()
    if outcome is None:
        log.info("memory: another refresh of the owner indexes is running")
        return None
    built, dropped = outcome
    if built or dropped:
        log.info("memory: owner indexes built for owners %s, dropped for %s", built, dropped)
    return {"built": built, "dropped": dropped}
