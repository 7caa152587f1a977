"""Bookkeeping writes that need not wait for the disk.

Every autocommitted write waits for its WAL record to be flushed (0.3 to 3 ms on this machine's
disk, depending on what else writes to it), and a step writes a dozen rows that only record what
happened: progress events, stage markers, LLM call logs. `unflushed()` commits those with
`synchronous_commit = off` for their transaction only. PostgreSQL still applies such a
transaction whole or not at all, and any later synchronous commit (a checkpoint, a deployment, a
task's end) flushes it first, so a crash of the database host can lose only the bookkeeping
written after the last state change: never accepted work, and never a record that state depends
on out of order.
"""

import contextlib

from django.db import connection, transaction


@contextlib.contextmanager
def unflushed():
    """A transaction whose commit does not wait for the disk; inside another transaction, that one
    decides (its commit is never made lazy from here)."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        yield
