"""Hybrid retrieval: pgvector cosine search + PostgreSQL full-text search, fused by reciprocal rank.

Every search is for one owner: their memories are the only rows it can return.

The owner filter and HNSW: pgvector 0.6 has no iterative index scans, so `WHERE owner = X ORDER
BY embedding <=> q LIMIT k` on the table-wide HNSW index looks at `hnsw.ef_search` nearest rows of
the whole table and then filters them — for an owner holding 1% of the rows, about 0.4 of 40
survive, and the query silently returns too few. So `vector_ranked` picks a plan per query:
- exact: the owner's rows are few (at most GRYPHGEN_MEMORY_EXACT_MAX); a scan of the owner's
  embedded rows through their (owner, kind, project) index, ordered by distance — cheap at that
  size (vectors are stored inline, not in TOAST), and exactly right;
- owner index: a larger owner has an HNSW index of their own (`memory.owner_indexes`), searched
  with `ef_search` raised to several times k over the share the filter keeps;
- index: a larger owner whose own index is not built yet, holding a large share of the table;
  the table-wide index with `ef_search` raised the same way.
An index plan that comes back short of the owner's rows is answered by the exact plan instead.
`bench/memory.py` measures latency and recall@10 of both against exact search.
"""

import math
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from memory import embeddings, owner_indexes
from memory.models import MemoryEntry

RRF_K = 60  # the usual reciprocal-rank-fusion constant
MAX_EF_SEARCH = 1000  # pgvector's limit
MIN_EF_SEARCH = 100  # pgvector's default is 40; recall@10 is worth the few extra candidates
TABLE = MemoryEntry._meta.db_table


@dataclass
class Hit:
    entry: MemoryEntry
    score: float  # fused: sum of 1 / (RRF_K + rank) over the rankings that found it
    similarity: float | None = None  # cosine similarity to the query, when the vector search found it
    vector_rank: int | None = None
    text_rank: int | None = None

    def as_record(self):
        """What an AgentCall stores about a memory it was given."""
        return {"id": self.entry.pk, "kind": self.entry.kind, "score": round(self.score, 5),
                "similarity": None if self.similarity is None else round(self.similarity, 4)}  # fmt: skip


@dataclass
class Result:
    hits: list = field(default_factory=list)
    plan: str = ""  # "exact" or "index (ef_search N)" or "" when the vector search did not run
    degraded: str = ""  # why only full-text search ran, if it did

    def relevant(self, min_similarity=None):
        """Hits worth putting in a prompt: similar enough, or (vector search down) matched by text."""
        floor = settings.GRYPHGEN_MEMORY_MIN_SIMILARITY if min_similarity is None else min_similarity
        return [h for h in self.hits if (h.similarity or 0) >= floor or (self.degraded and h.text_rank)]


def _filters(owner_id, kinds, project_id, exclude_key, exclude_ids):
    where, params = ["owner_id = %s"], [owner_id]
    if kinds:
        where.append("kind = ANY(%s)")
        params.append(list(kinds))
    if project_id is not None:
        where.append("project_id = %s")
        params.append(project_id)
    if exclude_key:
        where.append("key <> %s")
        params.append(exclude_key)
    if exclude_ids:
        where.append("NOT (id = ANY(%s))")
        params.append(list(exclude_ids))
    return " AND ".join(where), params


def _vector_literal(vector):
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def owner_share(owner_id, kinds, project_id):
    """(embedded rows the filter keeps, rows the index to use covers, whether it is the owner's own).

    The index is the owner's own (when built and valid) or else the table-wide one; row counts of
    indexes are the planner's estimates. Exclusions (a key, a few ids) are left out of the count:
    it only chooses a plan, and an index plan that comes back short falls back to exact anyway.
    """
    where, params = _filters(owner_id, kinds, project_id, "", ())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM {TABLE} WHERE {where} AND embedding IS NOT NULL), "
            "(SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            " WHERE c.relname = %s AND i.indisvalid), "
            "(SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = %s)",
            [*params, owner_indexes.name(owner_id), TABLE],
        )
        mine, own, table = cursor.fetchone()
    if own is not None:
        return mine, max(own, mine), True
    return mine, max(table, mine), False


def choose_plan(mine, covered, n):
    """("exact", 0) or ("index", ef_search) for a filter keeping `mine` of the `covered` vectors of
    the index at hand."""
    if mine <= settings.GRYPHGEN_MEMORY_EXACT_MAX or covered == 0:
        return "exact", 0
    ef = math.ceil(4 * n * covered / mine)  # expect about 4n of the filter's rows among the candidates
    if ef > MAX_EF_SEARCH:
        return "exact", 0
    return "index", max(ef, MIN_EF_SEARCH)


def _exact(cursor, where, params, literal, n):
    # `+ 0` keeps the planner off the HNSW indexes: this is the exact answer over the filtered rows.
    cursor.execute(
        f"SELECT id, embedding <=> %s::vector AS d FROM {TABLE} WHERE {where} AND embedding IS NOT NULL "
        f"ORDER BY (embedding <=> %s::vector) + 0 LIMIT %s",
        [literal, *params, literal, n],
    )
    return cursor.fetchall()


def vector_ranked(owner_id, vector, n, *, kinds=(), project_id=None, exclude_key="", exclude_ids=(), plan=None):
    """[(id, cosine distance)] nearest first, and the plan used. `plan` forces "exact" or "index"."""
    where, params = _filters(owner_id, kinds, project_id, exclude_key, exclude_ids)
    mine, covered, own_index = owner_share(owner_id, kinds, project_id)
    chosen, ef = choose_plan(mine, covered, n)
    if plan == "exact" or (plan == "index" and not ef):
        chosen, ef = plan, ef or MAX_EF_SEARCH
    literal = _vector_literal(vector)
    with transaction.atomic(), connection.cursor() as cursor:
        if chosen == "exact":
            return _exact(cursor, where, params, literal, n), "exact"
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        cursor.execute("SET LOCAL enable_sort = off")  # the HNSW order, not the owner index + a sort
        cursor.execute(
            f"SELECT id, embedding <=> %s::vector AS d FROM {TABLE} WHERE {where} AND embedding IS NOT NULL "
            f"ORDER BY embedding <=> %s::vector LIMIT %s",
            [literal, *params, literal, n],
        )
        rows = cursor.fetchall()
        if len(rows) < min(n, mine) and plan is None:  # the candidates were short of the owner's rows
            return _exact(cursor, where, params, literal, n), f"exact (index found {len(rows)})"
    return rows, f"{'owner index' if own_index else 'index'} (ef_search {ef})"


WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")
MAX_TERMS = 10  # the rarest carry the match; each term more makes matches more and ranking them slower
COMMON_TERM_ROWS = 1000  # a lexeme in more memories than this says little and costs the ranking much
TEXT_CANDIDATES = 500  # at most this many matching rows are ranked (70 µs a row with 31 terms, 2026-12-03)


def text_terms(text):
    """The query's lexemes for full-text search: the rarest (the longest among those the statistics
    do not list), at most MAX_TERMS.

    ts_rank_cd has no inverse document frequency and ranks every matching row, so an OR of a code
    chunk's words ("def | self | return | ...") matches most of a large owner's memories and takes
    half a second to rank. Lexemes that ANALYZE's statistics put in more than COMMON_TERM_ROWS
    memories are dropped (unless nothing else is left: then the two rarest stay).
    """
    words = list(dict.fromkeys(w.lower() for w in WORD.findall(text.replace("_", " "))))[:200]
    if not words:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme, coalesce(s.share * greatest(c.reltuples, 0), 0) AS rows "
            "FROM unnest(tsvector_to_array(to_tsvector('english', %s))) AS lexeme "
            "LEFT JOIN (SELECT e, f AS share FROM pg_stats, "
            "  unnest(most_common_elems::text::text[], most_common_elem_freqs) AS m(e, f) "
            "  WHERE schemaname = current_schema() AND tablename = %s AND attname = 'search') s ON s.e = lexeme "
            "CROSS JOIN (SELECT reltuples FROM pg_class WHERE relname = %s) c "
            "ORDER BY rows, length(lexeme) DESC, lexeme",  # unknown to the statistics: the longer first
            [" ".join(words), TABLE, TABLE],
        )
        ranked = cursor.fetchall()
    terms = [lexeme for lexeme, rows in ranked if rows <= COMMON_TERM_ROWS][:MAX_TERMS]
    return terms or [lexeme for lexeme, _ in ranked[:2]]


def text_ranked(owner_id, text, n, *, kinds=(), project_id=None, exclude_key="", exclude_ids=()):
    """[(id, ts_rank_cd)] best first."""
    terms = text_terms(text)
    if not terms:
        return []
    query = " | ".join(terms)  # lexemes already: the 'simple' configuration leaves them as they are
    where, params = _filters(owner_id, kinds, project_id, exclude_key, exclude_ids)
    with transaction.atomic(), connection.cursor() as cursor:
        # The planner underestimates an OR of rare lexemes and walks a large owner's rows by the
        # owner index, testing each one's tsvector (270 ms for 30,000 rows); without plain index
        # scans it intersects the owner's bitmap with the full-text index's instead (5 ms).
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            f"SELECT id, ts_rank_cd(search, q) AS r FROM to_tsquery('simple', %s) q, "
            f"LATERAL (SELECT id, search FROM {TABLE} WHERE {where} AND search @@ q LIMIT %s) m "
            f"ORDER BY r DESC, id DESC LIMIT %s",
            [query, *params, TEXT_CANDIDATES, n],
        )
        return cursor.fetchall()


def search(owner_id, query, *, k=None, kinds=(), project_id=None, exclude_key="", exclude_ids=(), vector=None):
    """The owner's `k` best memories for `query`, fused from vector and full-text rankings."""
    if owner_id is None:
        raise ValueError("memory search needs an owner")
    k = k or settings.GRYPHGEN_MEMORY_K
    n = max(4 * k, 20)  # each ranking contributes this many candidates to the fusion
    scope = {"kinds": kinds, "project_id": project_id, "exclude_key": exclude_key, "exclude_ids": exclude_ids}
    result = Result()
    if vector is None:
        try:
            vector = embeddings.embed([query[: settings.GRYPHGEN_EMBED_CHARS]])[0]
        except embeddings.EmbeddingError as exc:
            result.degraded = f"full-text search only: {exc}"
    ranked_vectors = []
    if vector is not None:
        ranked_vectors, result.plan = vector_ranked(owner_id, vector, n, **scope)
    ranked_text = text_ranked(owner_id, query, n, **scope)

    fused = {}
    for rank, (pk, distance) in enumerate(ranked_vectors, 1):
        fused[pk] = {"score": 1 / (RRF_K + rank), "vector_rank": rank, "similarity": 1 - distance}
    for rank, (pk, _) in enumerate(ranked_text, 1):
        slot = fused.setdefault(pk, {"score": 0.0})
        slot["score"] += 1 / (RRF_K + rank)
        slot["text_rank"] = rank
    best = sorted(fused.items(), key=lambda item: (-item[1]["score"], -item[0]))[:k]
    entries = MemoryEntry.objects.in_bulk([pk for pk, _ in best])
    result.hits = [Hit(entries[pk], **info) for pk, info in best if pk in entries]
    return result
