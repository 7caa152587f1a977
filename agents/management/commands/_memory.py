"""`manage.py gryphgen memory ...`: ingest documents, re-embed, search — the admin's tools for scripts.

gryphgen memory ingest PATH [PATH ...] --owner NAME [--project NAME]   files or whole folders
gryphgen memory embed                                                  what waits unembedded
gryphgen memory reembed                                                entries of another model
gryphgen memory search "QUERY" --owner NAME [--k N]                    ranked, with scores
"""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from agents.models import Project
from memory import chunking, embeddings, retrieval, store
from memory.models import MemoryEntry

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache"}


def add_arguments(parser):
    actions = parser.add_subparsers(dest="memory_action", required=True)
    ingest = actions.add_parser("ingest", help="chunk files (or every file under folders) into an owner's memory")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--owner", required=True, help="user name")
    ingest.add_argument("--project", help="project name (the owner's)")
    actions.add_parser("embed", help="embed the entries that wait for the embedding server")
    actions.add_parser("reembed", help="re-embed entries made by another embedding model (after changing it)")
    search = actions.add_parser("search", help="the owner's best memories for a query, with scores")
    search.add_argument("query")
    search.add_argument("--owner", required=True)
    search.add_argument("--k", type=int, default=10)


def _owner(name):
    try:
        return get_user_model().objects.get(username=name)
    except get_user_model().DoesNotExist:
        raise CommandError(f"no user named {name!r}") from None


def _files(paths):
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and not SKIP_DIRS.intersection(item.relative_to(path).parts):
                    yield item, str(item.relative_to(path.parent))
        elif path.is_file():
            yield path, path.name
        else:
            raise CommandError(f"{raw}: no such file or folder")


def run(command, options):
    action = options["memory_action"]
    if action == "ingest":
        ingest(command, options)
    elif action in ("embed", "reembed"):
        embed(command, stale=action == "reembed")
    else:
        search(command, options)


def ingest(command, options):
    owner = _owner(options["owner"])
    project = None
    if options["project"]:
        project = Project.objects.filter(owner=owner, name=options["project"]).first()
        if project is None:
            raise CommandError(f"{owner.username} has no project named {options['project']!r}")
    stored = refused = 0
    for path, name in _files(options["paths"]):
        try:
            entries = store.ingest_document(owner, name, path.read_bytes(), project=project)
        except chunking.DocumentError as exc:
            refused += 1
            command.stderr.write(f"skipped {exc}")
            continue
        stored += 1
        command.stdout.write(f"{name}: {len(entries)} chunk(s)")
    command.stdout.write(f"{stored} document(s) stored, {refused} skipped; embedding now ...")
    embed(command, stale=False)


def embed(command, stale):
    total = 0
    while True:
        done, reason = embeddings.embed_pending(limit=256, stale_model=stale)
        total += done
        if reason:
            left = MemoryEntry.objects.filter(embedding__isnull=True).count()
            raise CommandError(f"embedded {total}; {left} still wait (stored, not lost): {reason}")
        if done == 0:
            break
        command.stdout.write(f"embedded {total} ...")
    command.stdout.write(f"embedded {total} entries with {embeddings.model_name()}")


def search(command, options):
    if options["k"] <= 0:
        raise CommandError("--k must be a positive number")
    result = retrieval.search(_owner(options["owner"]).pk, options["query"], k=options["k"])
    if result.degraded:
        command.stderr.write(result.degraded)
    command.stdout.write(f"plan: {result.plan or 'full-text only'}")
    for hit in result.hits:
        similarity = "   -  " if hit.similarity is None else f"{hit.similarity:.3f}"
        first = hit.entry.content.strip().splitlines()[0][:90] if hit.entry.content.strip() else ""
        command.stdout.write(f"{hit.score:.4f}  sim {similarity}  #{hit.entry.pk} {hit.entry.kind:<8} {first}")
