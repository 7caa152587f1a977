"""Embeddings from the local embedding server (llama-server `--embeddings`, all-MiniLM-L6-v2, 384-d).

`embed(texts)` returns one unit-length vector per text, or raises `EmbeddingUnavailable` (the
server does not answer: callers store the entry unembedded and `embed_pending` catches up later)
or `EmbeddingError` (the server answered wrongly, e.g. vectors of another dimension).
"""

import logging

import openai
from django.conf import settings
from django.db.models import Q

from agents.llm import openai_client
from memory.models import EMBEDDING_DIM, MemoryEntry

log = logging.getLogger(__name__)
BATCH = 16  # texts per request
TOO_LARGE_RETRIES = 2  # halve a text this often when the server says it is too long


class EmbeddingError(RuntimeError):
    pass


class EmbeddingUnavailable(EmbeddingError):
    pass


def model_name():
    return settings.GRYPHGEN_EMBED_MODEL


def text_of(entry):
    """What is embedded for an entry: its source's name and the start of its content."""
    head = f"{entry.source}\n" if entry.source else ""
    return (head + entry.content)[: settings.GRYPHGEN_EMBED_CHARS]


def _client():
    return openai_client(settings.GRYPHGEN_EMBED_URL.rstrip("/") + "/v1", "", settings.GRYPHGEN_EMBED_TIMEOUT)


def _request(client, texts):
    try:
        reply = client.embeddings.create(model=model_name(), input=texts)
    except openai.InternalServerError as exc:
        if "too large" in str(exc.message):  # llama-server answers 500 for an input over its batch
            raise EmbeddingError(f"an input is too long for the embedding model: {exc.message}") from exc
        raise EmbeddingUnavailable(f"the embedding server failed: {exc.message}") from exc
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise EmbeddingUnavailable(f"the embedding server at {settings.GRYPHGEN_EMBED_URL} does not answer") from exc
    except openai.APIStatusError as exc:
        if exc.status_code == 503:
            raise EmbeddingUnavailable(f"the embedding server is loading or busy: {exc.message}") from exc
        raise EmbeddingError(f"the embedding server refused the request: HTTP {exc.status_code} {exc.message}") from exc
    vectors = [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]
    if len(vectors) != len(texts):
        raise EmbeddingError(f"the embedding server returned {len(vectors)} vectors for {len(texts)} texts")
    for vector in vectors:
        if len(vector) != EMBEDDING_DIM:
            raise EmbeddingError(
                f"dimension mismatch: the embedding model gives {len(vector)}-d vectors, memory stores "
                f"{EMBEDDING_DIM}-d; serve a {EMBEDDING_DIM}-d model or migrate the column, then re-embed"
            )
    return vectors


def embed(texts):
    """Vectors for `texts`, in order; empty texts are refused by the caller, not here."""
    client = _client()
    vectors = []
    for start in range(0, len(texts), BATCH):
        batch = [t or " " for t in texts[start : start + BATCH]]
        try:
            vectors += _request(client, batch)
        except EmbeddingUnavailable:
            raise
        except EmbeddingError:
            if len(batch) == 1 and len(batch[0]) < 64:
                raise
            vectors += [_embed_one(client, text) for text in batch]  # find the one that is too long
    return vectors


def _embed_one(client, text):
    for _ in range(TOO_LARGE_RETRIES):
        try:
            return _request(client, [text])[0]
        except EmbeddingUnavailable:
            raise
        except EmbeddingError:
            text = text[: len(text) // 2]
    return _request(client, [text])[0]


def embed_pending(limit=500, *, stale_model=False):
    """Embed entries that have no vector (or, with `stale_model`, one from another model).

    Returns (embedded, reason): reason is "" when everything selected was embedded. Entries the
    server cannot embed keep their content and get `embed_error`; nothing is lost either way.
    """
    wanted = Q(embedding__isnull=True)
    if stale_model:
        wanted |= ~Q(embedding_model=model_name())
    entries = list(MemoryEntry.objects.filter(wanted).order_by("id")[:limit])
    done = 0
    for start in range(0, len(entries), BATCH):
        batch = entries[start : start + BATCH]
        try:
            vectors = embed([text_of(entry) for entry in batch])
        except EmbeddingUnavailable as exc:
            return done, str(exc)
        except EmbeddingError as exc:
            MemoryEntry.objects.filter(pk__in=[e.pk for e in batch]).update(embed_error=str(exc)[:1000])
            log.warning("memory: %d entries not embedded: %s", len(batch), exc)
            return done, str(exc)
        for entry, vector in zip(batch, vectors, strict=True):
            done += MemoryEntry.objects.filter(pk=entry.pk, content=entry.content).update(
                embedding=vector, embedding_model=model_name(), dimensions=len(vector), embed_error=""
            )
    return done, ""
