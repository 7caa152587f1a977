"""Memory retrieval at scale: latency and owner-filtered recall@10, all measured in one run.

Corpus (named, reproducible): the source of the Python standard library this venv runs on
(CPython 3.11.7's `Lib/`), then of celery, django, kombu, matplotlib, numpy, pygments and twisted
at the versions requirements.txt pins, files in sorted path order, cut by GRYPHGEN's own chunker
at 800 characters without overlap; Q chunks spread evenly over it are the queries and the other N the entries.
Entries are spread over owners of very different sizes (Zipf-like, from about 30% of all rows
down to a few dozen) in corpus order, so an owner's memories are about their own modules, as
in life. Embeddings (all-MiniLM-L6-v2 through llama-server, of each chunk's file name and first
200 characters) are cached under var/bench-memory/ keyed by the model's and the texts' hashes:
the first run embeds (minutes), later runs load them.

For every query and every owner, in the same run: exact search (the ground truth), the naive
filtered HNSW query (pgvector 0.6 filters after the index scan), GRYPHGEN's `vector_ranked`
(exact below a size, raised ef_search above), and the full hybrid `search` (vector + full-text,
RRF) with a precomputed query vector. Prints JSON and rewrites the memory section of
docs/benchmarks.md.

    .venv/bin/python bench/memory.py [--entries 100000] [--owners 24] [--queries 100] [--embed-only]
"""

import argparse
import collections
import hashlib
import json
import os
import platform
import statistics
import sys
import sysconfig
import time
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from benchmarks.stack import private_stack  # noqa: E402

BENCH_VAR = BASE / "var" / "bench-memory"
EMBED_TEXT_CHARS = 200
# After the standard library, these packages' sources, at the versions requirements.txt pins.
CORPUS_PACKAGES = ("celery", "django", "kombu", "matplotlib", "numpy", "pygments", "twisted")
CHUNK_CHARS = 800


def source_files():
    """(root, path) of every .py file of the corpus, in its fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    yield from ((stdlib, p) for p in sorted(stdlib.rglob("*.py")) if "site-packages" not in p.parts)
    site = Path(sysconfig.get_paths()["purelib"])
    for package in CORPUS_PACKAGES:
        yield from ((site, p) for p in sorted((site / package).rglob("*.py")))


def corpus(count):
    """(name, text) of the first `count` chunks of the corpus."""
    from memory import chunking

    out = []
    for root, path in source_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip():
            continue
        name = str(path.relative_to(root))
        out += [(name, piece.text) for piece in chunking.chunk(name, text, CHUNK_CHARS, 0)]
        if len(out) >= count:
            return out[:count]
    raise SystemExit(f"the corpus gives only {len(out)} chunks; ask for fewer")


def query_positions(total, count):
    """`count` positions spread evenly over the corpus: queries about every owner's subjects."""
    return [int((i + 0.5) * total / count) for i in range(count)]


def owner_sizes(total, owners, smallest=30):
    weights = [1 / (rank**1.1) for rank in range(1, owners + 1)]
    scale = (total - smallest * owners) / sum(weights)
    sizes = [smallest + int(w * scale) for w in weights]
    sizes[0] += total - sum(sizes)
    return sizes


def embed_all(texts, cache_dir):
    import numpy as np

    from gryphgen_site.embedding_model import EMBEDDING_MODEL_SHA256
    from memory import embeddings

    digest = hashlib.sha256(EMBEDDING_MODEL_SHA256.encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    path = cache_dir / f"embeddings-{digest.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path).astype(np.float32), True
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A stopped run keeps what it embedded: the prefix is saved every 10k texts and resumed.
    partial = path.with_name(path.stem + "-partial.npy")
    vectors = list(np.load(partial)) if partial.exists() else []
    done, started = len(vectors), time.monotonic()
    for start in range(done, len(texts), 256):
        vectors += embeddings.embed(texts[start : start + 256])
        rate = (len(vectors) - done) / (time.monotonic() - started)
        print(f"embedded {len(vectors)}/{len(texts)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
        if len(vectors) % 10240 == 0:
            np.save(partial, np.array(vectors, dtype=np.float16))
    array = np.array(vectors, dtype=np.float16)
    np.save(path, array)
    partial.unlink(missing_ok=True)
    return array.astype(np.float32), False


def load(entries, vectors, sizes):
    """COPY the entries in (owner i gets the next sizes[i] chunks); returns the owners' ids."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from memory import owner_indexes, retrieval
    from memory.models import EMBEDDING_DIM, MemoryEntry

    User = get_user_model()
    MemoryEntry.objects.all().delete()
    User.objects.filter(username__startswith="bench-owner-").delete()
    owners = [User.objects.create(username=f"bench-owner-{i:02d}").pk for i in range(len(sizes))]
    assignment = owner_of_each(owners, sizes)
    table = retrieval.TABLE
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {owner_indexes.TABLE_WIDE.name}")
        with cursor.copy(
            f"COPY {table} (owner_id, kind, key, source, content, metadata, embedding, embedding_model, "
            "dimensions, embed_error, created) FROM STDIN"
        ) as copy:
            for owner, (name, text), vector in zip(assignment, entries, vectors, strict=True):
                copy.write_row((owner, "document", "", name, text, "{}", retrieval._vector_literal(vector),
                                settings.GRYPHGEN_EMBED_MODEL, EMBEDDING_DIM, "", datetime.now(UTC)))  # fmt: skip
        started = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(owner_indexes.create_sql(owner_indexes.TABLE_WIDE.name))
        build = time.monotonic() - started
        cursor.execute(f"VACUUM ANALYZE {table}")  # what autovacuum does after a load in life
    started = time.monotonic()
    built, _ = owner_indexes.refresh()  # beat's "memory-owner-indexes" job, run now
    return owners, build, {"owners": len(built), "seconds": round(time.monotonic() - started, 1)}


def naive(owner, literal, k):
    from django.db import connection, transaction

    from memory import retrieval

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")  # make the planner take the HNSW order, as at scale
        cursor.execute(
            f"SELECT id FROM {retrieval.TABLE} WHERE owner_id = %s AND embedding IS NOT NULL "
            "ORDER BY embedding <=> %s::vector LIMIT %s",
            [owner, literal, k],
        )
        return [row[0] for row in cursor.fetchall()]


def percentiles(samples):
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
    }


def owner_of_each(owners, sizes):
    """The owner of each entry, in order: owner i holds the next sizes[i] chunks of the corpus."""
    return [owner for owner, size in zip(owners, sizes, strict=True) for _ in range(size)]


def holders(entries, owners, sizes):
    """{source file: the owner holding its chunks}."""
    return {name: owner for owner, (name, _) in zip(owner_of_each(owners, sizes), entries, strict=True)}


def measure(owners, sizes, queries, query_vectors, holder, k=10):
    """Latency and recall@10 against exact search, per owner; and, for each query under the owner
    holding the rest of its file, the share of the top 10 from that file (a relevance proxy: no
    one has judged these memories, but a chunk's neighbours are about what it is about)."""
    from memory import retrieval
    from memory.models import MemoryEntry

    source_of = dict(MemoryEntry.objects.filter(owner_id__in=owners).values_list("id", "source"))
    same_file = {"gryphgen": [], "hybrid": []}
    timings = {"exact": [], "naive_hnsw": [], "gryphgen": [], "hybrid": []}
    per_owner = []
    for owner, size in zip(owners, sizes, strict=True):
        found = {"naive_hnsw": [], "gryphgen": []}
        counts = {"naive_hnsw": [], "gryphgen": []}
        plans = collections.Counter()
        for (name, text), vector in zip(queries, query_vectors, strict=True):
            literal = retrieval._vector_literal(vector)
            started = time.perf_counter()
            truth = [pk for pk, _ in retrieval.vector_ranked(owner, vector, k, plan="exact")[0]]
            timings["exact"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            got = naive(owner, literal, k)
            timings["naive_hnsw"].append((time.perf_counter() - started) * 1000)
            found["naive_hnsw"].append(len(set(got) & set(truth)) / k)
            counts["naive_hnsw"].append(len(got))
            started = time.perf_counter()
            ranked, plan = retrieval.vector_ranked(owner, vector, k)
            timings["gryphgen"].append((time.perf_counter() - started) * 1000)
            plans["index, then exact" if plan.startswith("exact (") else plan.split(" (")[0]] += 1
            found["gryphgen"].append(len({pk for pk, _ in ranked} & set(truth)) / k)
            counts["gryphgen"].append(len(ranked))
            started = time.perf_counter()
            hits = retrieval.search(owner, text, k=k, vector=vector).hits
            timings["hybrid"].append((time.perf_counter() - started) * 1000)
            if holder.get(name) == owner:
                same_file["gryphgen"].append(sum(source_of[pk] == name for pk, _ in ranked) / k)
                same_file["hybrid"].append(sum(hit.entry.source == name for hit in hits) / k)
        per_owner.append({
            "owner_rows": size,
            "plans": dict(plans),
            **{f"recall_at_10_{name}": round(statistics.mean(v), 3) for name, v in found.items()},
            **{f"rows_returned_{name}": round(statistics.mean(v), 1) for name, v in counts.items()},
        })  # fmt: skip
    relevance = {name: round(statistics.mean(v), 3) for name, v in same_file.items() if v}
    relevance["queries"] = len(same_file["hybrid"])
    return {name: percentiles(samples) for name, samples in timings.items()}, per_owner, relevance


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=24)
    parser.add_argument("--queries", type=int, default=100, help="query texts, each searched under every owner")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--embed-only", action="store_true",
        help="fill the embedding cache and stop (e.g. under `nice` while the machine is busy; measure later)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.owners < 2 or args.entries < args.owners * 30:
        parser.error("need at least 2 owners and 30 entries per owner")
    with private_stack(
        BENCH_VAR, redis=False, models=(), embed_threads=os.cpu_count() or 1, workers=0,
        env={"GRYPHGEN_EMBED_TIMEOUT": "120"},
    ):  # fmt: skip
        import numpy as np
        from django.conf import settings

        from memory import retrieval

        chunks = corpus(args.entries + args.queries)
        texts = [f"{name}\n{text[:EMBED_TEXT_CHARS]}" for name, text in chunks]
        started = time.monotonic()
        vectors, cached = embed_all(texts, BENCH_VAR)
        embed_seconds = time.monotonic() - started
        if args.embed_only:
            print(json.dumps({"embedded": len(texts), "cached": cached, "seconds": round(embed_seconds, 1)}))
            return
        picked = set(query_positions(len(chunks), args.queries))
        entries = [c for i, c in enumerate(chunks) if i not in picked]
        queries = [c for i, c in enumerate(chunks) if i in picked]
        entry_vectors = vectors[[i for i in range(len(chunks)) if i not in picked]]
        query_vectors = vectors[sorted(picked)]
        sizes = owner_sizes(args.entries, args.owners)
        owners, build_seconds, own_indexes = load(entries, entry_vectors, sizes)
        load_before = os.getloadavg()[0]
        latency, per_owner, relevance = measure(owners, sizes, queries, query_vectors, holders(entries, owners, sizes))
        small = [o for o in per_owner if o["owner_rows"] <= settings.GRYPHGEN_MEMORY_EXACT_MAX]
        large = [o for o in per_owner if o["owner_rows"] > settings.GRYPHGEN_MEMORY_EXACT_MAX]
        result = {
            "benchmark": "memory",
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "corpus": f"Python {platform.python_version()} standard library + {', '.join(CORPUS_PACKAGES)} "
            f"(as pinned), {CHUNK_CHARS}-char chunks",
            "entries": args.entries,
            "owners": args.owners,
            "owner_rows": sizes,
            "queries_per_owner": len(queries),
            "embeddings": {
                "cached": cached,
                "seconds": round(embed_seconds, 1),
                "texts_per_second": None if cached else round(len(texts) / embed_seconds, 1),
            },  # fmt: skip
            "hnsw_build_seconds": round(build_seconds, 1),
            "owner_indexes": own_indexes,
            "exact_max": settings.GRYPHGEN_MEMORY_EXACT_MAX,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "common_term_rows": retrieval.COMMON_TERM_ROWS,
            "text_candidates": retrieval.TEXT_CANDIDATES,
            "max_terms": retrieval.MAX_TERMS,
            "latency": latency,
            "same_file_share_at_10": relevance,
            "recall_at_10": {
                name: round(float(np.mean([o[f"recall_at_10_{name}"] for o in per_owner])), 3)
                for name in ("naive_hnsw", "gryphgen")
            },
            "recall_at_10_small_owners": {
                name: round(float(np.mean([o[f"recall_at_10_{name}"] for o in small])), 3) if small else None
                for name in ("naive_hnsw", "gryphgen")
            },
            "recall_at_10_large_owners": {
                name: round(float(np.mean([o[f"recall_at_10_{name}"] for o in large])), 3) if large else None
                for name in ("naive_hnsw", "gryphgen")
            },
            "per_owner": per_owner,
            "command": "bench/memory.py " + " ".join(sys.argv[1:]),
        }
        print(json.dumps(result, indent=2))
        if not args.no_doc:
            write_doc(result)


def write_doc(r):
    from benchmarks.report import write_section

    rows = "\n".join(
        f"| {o['owner_rows']:,} | {', '.join(f'{p} {n}' for p, n in o['plans'].items())} | {o['rows_returned_naive_hnsw']} | "
        f"{o['recall_at_10_naive_hnsw']:.2f} | {o['rows_returned_gryphgen']} | {o['recall_at_10_gryphgen']:.2f} |"
        for o in r["per_owner"]
    )
    lat, rel = r["latency"], r["same_file_share_at_10"]
    embedded = (
        "loaded from the cache"
        if r["embeddings"]["cached"]
        else f"embedded in {r['embeddings']['seconds']} s ({r['embeddings']['texts_per_second']} texts/s)"
    )
    write_section(
        "memory",
        f"""## Memory retrieval (`bench/memory.py`)

{r["date"]}, {r["machine"]}; {r["entries"]:,} entries over {r["owners"]} owners, corpus: {r["corpus"]}
(embeddings {embedded}); HNSW m=16, ef_construction=64 built in {r["hnsw_build_seconds"]} s, and
{r["owner_indexes"]["owners"]} owners' own HNSW indexes (owners above {r["exact_max"]:,} rows) in {r["owner_indexes"]["seconds"]} s;
{r["queries_per_owner"]} held-out chunks spread over the corpus as queries, each searched under every owner
(so most searches are about another owner's subjects, the hard case for a filtered index). Command:
`.venv/bin/python {r["command"]}`.

| search, top 10 | p50 ms | p95 ms |
|---|---|---|
| exact (filtered scan, ground truth) | {lat["exact"]["p50_ms"]} | {lat["exact"]["p95_ms"]} |
| naive HNSW + owner filter (pgvector 0.6) | {lat["naive_hnsw"]["p50_ms"]} | {lat["naive_hnsw"]["p95_ms"]} |
| GRYPHGEN vector search (plan per owner) | {lat["gryphgen"]["p50_ms"]} | {lat["gryphgen"]["p95_ms"]} |
| GRYPHGEN hybrid search (vector + full-text, RRF) | {lat["hybrid"]["p50_ms"]} | {lat["hybrid"]["p95_ms"]} |

Owner-filtered recall@10 against exact search, mean over owners: naive
{r["recall_at_10"]["naive_hnsw"]:.3f}, GRYPHGEN {r["recall_at_10"]["gryphgen"]:.3f}; owners up to
{r["exact_max"]:,} rows (exact plan): naive {r["recall_at_10_small_owners"]["naive_hnsw"]},
GRYPHGEN {r["recall_at_10_small_owners"]["gryphgen"]}; larger owners (their own HNSW index):
naive {r["recall_at_10_large_owners"]["naive_hnsw"]}, GRYPHGEN {r["recall_at_10_large_owners"]["gryphgen"]}.
Relevance proxy (no one has judged these memories; a chunk's neighbours in its file are about what
it is about): under the owner holding the rest of the query's file ({rel["queries"]} queries), the share of
the top 10 from that file is {rel["gryphgen"]} for vector search and {rel["hybrid"]} for hybrid search.

| owner rows | GRYPHGEN plans (of the queries) | naive: rows returned | naive: recall@10 | GRYPHGEN: rows returned | GRYPHGEN: recall@10 |
|---|---|---|---|---|---|
{rows}

The naive query lets pgvector 0.6 take `ef_search` (40) candidates from the whole table and
filter them afterwards: a small owner's rows are rarely among them, so it returns fewer than 10
rows, silently. GRYPHGEN scans a small owner's rows exactly (vectors stored inline, through the
index of owners' embedded rows) and gives an owner above the threshold an HNSW index of their own
(a partial index, built concurrently by a beat job), falling back to exact when an index comes
back short ("index, then exact"). The naive query finds such an owner's index too (the planner
takes the partial index for `owner_id = X`), so it does well for those owners and only for them.
The full-text half of hybrid search ranks a query's {r["max_terms"]} rarest lexemes (of those ANALYZE's
statistics put in at most {r["common_term_rows"]:,} memories) over at most {r["text_candidates"]:,} matches,
found by intersecting the owner's rows with the full-text index: an OR of
all of a code chunk's words matched most of a large owner's rows and ranked them all (hybrid p95
353 ms, 2026-11-29, before this). The hybrid latency excludes embedding the query (one llama-server
call, measured by the e2e bench). The host's 1-minute load average was {r["load_average"][0]} before
the searches and {r["load_average"][1]} after.
""",
    )


if __name__ == "__main__":
    main()
