"""An HNSW index of their own for owners with many memories.

pgvector 0.6 filters after the index scan, so the table-wide HNSW index serves one owner's search
only when that owner holds a large share of all rows; below that, `retrieval` scans the owner's
rows exactly, which grows linearly with the owner (about 20 ms at 15,000 rows on 2 cores). An
owner with more than GRYPHGEN_MEMORY_EXACT_MAX embedded memories therefore gets a partial HNSW
index (`WHERE owner_id = N`): the planner takes it for a query that filters on that owner, and
every candidate it yields is theirs.

`refresh` (beat's "memory-owner-indexes", and after a bulk load) builds the missing ones with
CREATE INDEX CONCURRENTLY, so owners' work never waits on a build, rebuilds any a crash left
invalid, and drops those of owners who fell to half the threshold or are gone. One refresh runs
at a time (an advisory lock).
"""

import logging

from django.conf import settings
from django.db import connection

from memory.models import MemoryEntry

log = logging.getLogger(__name__)
TABLE = MemoryEntry._meta.db_table
PREFIX = "memory_owner_"
SUFFIX = "_hnsw"
LOCK = 0x6D656D6F  # the advisory lock one refresh holds
# an owner's index is built like the table-wide one (MemoryEntry.Meta.indexes)
TABLE_WIDE = next(index for index in MemoryEntry._meta.indexes if index.name == "memory_embedding_hnsw")


def name(owner_id):
    return f"{PREFIX}{int(owner_id)}{SUFFIX}"


def create_sql(index_name, where="", concurrently=False):
    """CREATE INDEX for an HNSW index with the table-wide index's operator class and parameters."""
    return (
        f"CREATE INDEX {'CONCURRENTLY IF NOT EXISTS ' if concurrently else ''}{index_name} ON {TABLE} "
        f"USING hnsw (embedding {TABLE_WIDE.opclasses[0]}) "
        f"WITH (m = {int(TABLE_WIDE.m)}, ef_construction = {int(TABLE_WIDE.ef_construction)})"
        + (f" WHERE {where}" if where else "")
    )


def existing():
    """{owner id: valid} of the owner indexes that exist."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass AND c.relname LIKE %s",
            [TABLE, f"{PREFIX}%{SUFFIX}"],
        )
        rows = cursor.fetchall()
    found = {}
    for relname, valid in rows:
        middle = relname[len(PREFIX) : -len(SUFFIX)]
        if middle.isdigit():
            found[int(middle)] = valid
    return found


def _sizes():
    """{owner id: embedded memories}."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT owner_id, count(*) FROM {TABLE} WHERE embedding IS NOT NULL GROUP BY owner_id")
        return dict(cursor.fetchall())


def refresh():
    """Build, rebuild and drop owner indexes to match the owners' sizes now: (built, dropped) owner
    ids (dropped: not rebuilt), or None when another refresh holds the lock. Runs outside a
    transaction (CONCURRENTLY)."""
    if connection.in_atomic_block:
        raise RuntimeError("owner indexes are built concurrently: call refresh() outside a transaction")
    threshold = settings.GRYPHGEN_MEMORY_EXACT_MAX
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK])
        if not cursor.fetchone()[0]:
            return None
        try:
            sizes, indexes = _sizes(), existing()
            dropped = [o for o, valid in indexes.items() if not valid or sizes.get(o, 0) <= threshold // 2]
            for owner_id in dropped:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name(owner_id)}")
            built = [o for o, rows in sorted(sizes.items()) if rows > threshold and indexes.get(o) is not True]
            for owner_id in built:
                log.info("memory: building %s (%d memories)", name(owner_id), sizes[owner_id])
                cursor.execute(create_sql(name(owner_id), f"owner_id = {int(owner_id)}", concurrently=True))
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK])
    return built, [o for o in dropped if o not in built]
