"""What goes into memory: accepted solutions, lessons (see guardians.recovery), owner documents.

Entries are written first and embedded after the commit (`memory.embed_pending`), so an
embedding server that is down never loses one. A document's chunks are written in one
transaction: all of them or none.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from memory import chunking
from memory.models import MemoryEntry


def embed_soon():
    """Ask a worker to embed what is pending once the current transaction commits."""
    from memory.tasks import embed_pending

    transaction.on_commit(embed_pending.delay)


def remember_solution(task, checkpoint, code_text):
    """The accepted request with its code, once per task."""
    entry, created = MemoryEntry.objects.get_or_create(
        task=task,
        defaults={
            "owner_id": task.project.owner_id,
            "project": task.project,
            "kind": MemoryEntry.Kind.SOLUTION,
            "key": task.memory_key,
            "content": f"{task.request}\n\n{code_text}",
            "metadata": {
                "checkpoint": checkpoint.pk,
                "tests": checkpoint.tests_total,
                "mode": task.mode,
                "request_chars": len(task.request),
            },  # where the code starts: prompts keep it whole
        },
    )
    if created:
        embed_soon()
    return entry


def ingest_document(owner, name, data, *, project=None):
    """Chunk one uploaded file into DOCUMENT entries, replacing an earlier upload of the same name.

    Raises chunking.DocumentError (binary, too large, empty, not UTF-8) before writing anything.
    """
    name = name.strip().replace("\\", "/")[-300:]
    if not name:
        raise chunking.DocumentError("a document needs a name")
    text = chunking.decode(name, data, settings.GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES)
    chunks = chunking.chunk(name, text, settings.GRYPHGEN_MEMORY_CHUNK_CHARS, settings.GRYPHGEN_MEMORY_CHUNK_OVERLAP)
    with transaction.atomic():
        MemoryEntry.objects.filter(owner=owner, kind=MemoryEntry.Kind.DOCUMENT, source=name).delete()
        entries = MemoryEntry.objects.bulk_create(
            MemoryEntry(
                owner=owner,
                project=project,
                kind=MemoryEntry.Kind.DOCUMENT,
                source=name,
                content=piece.text,
                metadata={"chunk": i, "chunks": len(chunks), "lines": [piece.first_line, piece.last_line]},
            )
            for i, piece in enumerate(chunks)
        )
        embed_soon()
    return entries


def mark_rolled_back(checkpoints):
    """The solutions of rolled-back checkpoints stay in memory, but are never reused as they are."""
    checkpoints = list(checkpoints)
    entries = MemoryEntry.objects.filter(kind=MemoryEntry.Kind.SOLUTION).filter(
        Q(metadata__checkpoint__in=[cp.pk for cp in checkpoints])
        | Q(pk__in=[cp.reused_id for cp in checkpoints if cp.reused_id])
    )
    for entry in entries:
        entry.metadata = {**entry.metadata, "rolled_back": True}
        entry.save(update_fields=["metadata"])
