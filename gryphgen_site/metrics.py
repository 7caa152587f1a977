"""`/metrics` for Prometheus (prometheus_client): read from the database at scrape time, so every
web process answers alike and workers on other hosts need no exporter of their own.

    gryphgen_tasks{status, mode}                         tasks now in each status (gauge)
    gryphgen_llm_call_seconds{role}                      model call latency (histogram)
    gryphgen_llm_tokens_total{model}                     prompt + completion tokens (counter)
    gryphgen_sandbox_runs_total{purpose, status, limit}  sandbox runs and the limit that ended them
    gryphgen_queue_depth{queue}                          messages waiting in each Celery queue

Staff signed in may read it; a scraper sends `Authorization: Bearer <GRYPHGEN_METRICS_TOKEN>`.
Counts only: no request text, code, owner or address ever appears.
"""

import hmac

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)  # seconds; a CPU model call takes 1-120 s


class DatabaseCollector:
    def collect(self):
        from agents.models import AgentCall, SandboxRun, Task

        tasks = GaugeMetricFamily("gryphgen_tasks", "Tasks now in each status, by mode.", labels=["status", "mode"])
        for row in Task.objects.values("status", "mode").annotate(n=Count("id")).order_by():
            tasks.add_metric([row["status"], row["mode"]], row["n"])
        yield tasks

        latency = HistogramMetricFamily("gryphgen_llm_call_seconds", "Model call latency by role.", labels=["role"])
        bounds = {f"le_{i}": Count("id", filter=Q(latency_ms__lte=b * 1000)) for i, b in enumerate(LATENCY_BUCKETS)}
        for row in AgentCall.objects.values("role").annotate(n=Count("id"), ms=Sum("latency_ms"), **bounds).order_by():
            buckets = [(str(b), row[f"le_{i}"]) for i, b in enumerate(LATENCY_BUCKETS)] + [("+Inf", row["n"])]
            latency.add_metric([row["role"]], buckets, sum_value=(row["ms"] or 0) / 1000)
        yield latency

        tokens = CounterMetricFamily("gryphgen_llm_tokens", "Prompt and completion tokens by model.", labels=["model"])
        usage = AgentCall.objects.values("model").annotate(t=AgentCall.tokens())
        for row in usage.order_by():
            tokens.add_metric([row["model"] or "unknown"], row["t"] or 0)
        yield tokens

        runs = CounterMetricFamily(
            "gryphgen_sandbox_runs", "Sandbox runs by purpose and outcome; `limit` names the limit that ended a run.",
            labels=["purpose", "status", "limit"],
        )  # fmt: skip
        for row in SandboxRun.objects.values("purpose", "status", "limit").annotate(n=Count("id")).order_by():
            runs.add_metric([row["purpose"], row["status"], row["limit"] or "none"], row["n"])
        yield runs

        depth = GaugeMetricFamily("gryphgen_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        for queue, waiting in queue_depths().items():
            depth.add_metric([queue], waiting)
        yield depth


def queue_depths() -> dict:
    """Redis list lengths of the Celery queues (the kombu Redis transport keeps one list per queue)."""
    import redis

    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
        return {q: client.llen(q) for q in settings.GRYPHGEN_WORKER_QUEUES.split(",")}
    except redis.RedisError:
        return {}  # the broker is down: /healthz says so; the other metrics still answer


def allowed(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.GRYPHGEN_METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


@require_GET
def metrics(request):
    if not allowed(request):
        return HttpResponse("staff, or the bearer token GRYPHGEN_METRICS_TOKEN, only\n", status=403)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
