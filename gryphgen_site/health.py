"""`/healthz`: is every part up? 200 when all are, 503 naming the ones that are not.

The parts: the database, the broker, each model the live policy's roster uses (any of its
endpoints), the embedding server, at least one worker consuming each queue, and beat (the stall
reaper's last claimed run is recent). The answer names parts and their state, never an address
or a secret, so it may be served to a load balancer without signing in.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from gryphgen_site import stack

TIMEOUT = 1.5  # seconds a worker ping may take
BEAT_SLACK = 3  # beat counts as up while its most frequent job ran within this many periods


def database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError as exc:
        return f"unreachable ({type(exc).__name__})"


def broker() -> str:
    return "ok" if stack.answers_redis(settings.CELERY_BROKER_URL) else "unreachable"


def model(name: str) -> str:
    urls = settings.GRYPHGEN_MODELS[name]["urls"]
    return "ok" if any(stack.answers_llama(url) for url in urls) else f"none of its {len(urls)} endpoint(s) answers"


def embedder() -> str:
    return "ok" if stack.answers_llama(settings.GRYPHGEN_EMBED_URL) else "unreachable"


def workers() -> dict:
    from gryphgen_site.celery import app

    try:
        replies = app.control.inspect(timeout=TIMEOUT).active_queues() or {}
    except OSError as exc:
        return {f"queue {q}": f"cannot ask ({type(exc).__name__})" for q in settings.GRYPHGEN_WORKER_QUEUES.split(",")}
    consumed = {queue["name"] for queues in replies.values() for queue in queues}
    return {
        f"queue {q}": "ok" if q in consumed else "no worker consumes it"
        for q in settings.GRYPHGEN_WORKER_QUEUES.split(",")
    }


def beat() -> str:
    from guardians.models import ScheduledRun

    last = (
        ScheduledRun.objects.filter(job="reap_stalled").order_by("-claimed").values_list("claimed", flat=True).first()
    )
    if last is None:
        return "has not run yet"
    late = timezone.now() - last
    if late > timedelta(seconds=BEAT_SLACK * settings.GRYPHGEN_REAP_SECONDS):
        return f"last ran {int(late.total_seconds())} s ago"
    return "ok"


def check() -> dict:
    """{part: "ok" or what is wrong}."""
    from agents import policy

    parts = {"database": database()}
    models = sorted(settings.GRYPHGEN_MODELS)
    if parts["database"] == "ok":
        try:
            models = sorted(set(policy.values_of(policy.live()).roster.values()))
            parts["policy"] = "ok"
        except policy.PolicyError as exc:  # e.g. its roster names a model the settings no longer serve
            parts["policy"] = str(exc)[:300]
    with ThreadPoolExecutor(4) as pool:  # the network checks at once: the answer stays quick
        network = {
            "broker": pool.submit(broker),
            "embedder": pool.submit(embedder),
            **{f"model {name}": pool.submit(model, name) for name in models},
            "workers": pool.submit(workers),
        }
        for name, future in network.items():
            result = future.result()
            parts.update(result if isinstance(result, dict) else {name: result})
    if parts["database"] == "ok":
        parts["beat"] = beat()
    else:
        parts["beat"] = "unknown: the database is unreachable"
    return parts


@require_GET
def healthz(request):
    parts = check()
    failing = sorted(name for name, state in parts.items() if state != "ok")
    return JsonResponse({"ok": not failing, "failing": failing, "parts": parts}, status=503 if failing else 200)
