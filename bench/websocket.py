"""Websocket event latency: a step publishes its progress event → an owner's browser receives it.

Starts its own PostgreSQL, Redis and daphne (as `make run` does) under var/bench-websocket/,
signs an owner in with Debian's chromium (Playwright) on a running task's page, then publishes
`--events` progress events the way a workflow step does (agents.progress.publish: the row, then
the channel layer through Redis to daphne's consumer to the page's socket), `--interval` apart.
The page stamps each message as it arrives; both clocks are this machine's. Prints JSON with
p50, p95 and max in milliseconds; with --doc writes them into docs/benchmarks.md.

    .venv/bin/python bench/websocket.py --events 300 --doc
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from benchmarks.stack import private_stack  # noqa: E402
from gryphgen_site import stack  # noqa: E402

VAR = BASE / "var" / "bench-websocket"

# Every message the page's socket receives, stamped on arrival (performance.timeOrigin + now()).
STAMP = """window.arrivals = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", m => window.arrivals.push([performance.timeOrigin + performance.now(), m.data]));
    this.addEventListener("open", () => { window.socketOpen = true; });
  }
};"""


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(web: str, events: int, interval: float) -> list:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from playwright.sync_api import sync_playwright

    from agents.models import Project, Task
    from agents.progress import publish

    owner = get_user_model().objects.create_user("bench-owner")
    owner.password = PBKDF2PasswordHasher().encode("pw", PBKDF2PasswordHasher().salt())
    owner.save()
    task = Task.objects.create(
        project=Project.objects.create(owner=owner, name="latency"), request="r", status=Task.Status.RUNNING
    )
    sent = {}

    def steps():  # a thread of its own: publish pushes through async_to_sync, which needs no running loop here
        for i in range(events):
            event = publish(task, "execute", f"step {i} finished")
            sent[event.pk] = event.created.timestamp() * 1000
            time.sleep(interval)

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not on PATH: apt-get install chromium (`make test` installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context().new_page()
        page.add_init_script(STAMP)
        page.goto(f"{web}/accounts/login/?next=/tasks/{task.pk}/")
        page.fill("#id_username", "bench-owner")
        page.fill("#id_password", "pw")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function("window.socketOpen === true", timeout=30_000)
        worker = threading.Thread(target=steps)
        worker.start()
        worker.join()
        page.wait_for_function(f"window.arrivals.length >= {events}", timeout=60_000)
        arrivals = page.evaluate("window.arrivals")
        browser.close()
    received = {json.loads(data)["id"]: at for at, data in arrivals}
    return [received[pk] - at for pk, at in sent.items() if pk in received]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between events")
    parser.add_argument("--doc", action="store_true")
    args = parser.parse_args()
    with private_stack(
        VAR, fresh=True, models=(), embedder=False, workers=0, env={"DJANGO_ALLOW_ASYNC_UNSAFE": "true"}
    ):
        from django.conf import settings

        port = stack.free_port()
        secrets = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL")} | {
            "GRYPHGEN_SECRET_KEY": settings.SECRET_KEY
        }
        web = stack.start_web(port, VAR / "log", secrets, name="web-websocket-bench")
        try:
            latencies = measure(f"http://127.0.0.1:{port}", args.events, args.interval)
        finally:
            web.stop()
    load = os.getloadavg()[0]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "events": args.events, "received": len(latencies),
        "interval_s": args.interval, "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1), "max_ms": round(max(latencies), 1),
        "load_average_1min": round(load, 2), "cores": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.doc:
        from benchmarks.report import write_section

        write_section(
            "websocket",
            f"""## Websocket event latency (`bench/websocket.py`)

{result["date"]}, {result["cores"]} cores, load average {result["load_average_1min"]} while it ran. Command:
`.venv/bin/python bench/websocket.py --events {args.events}{" --doc" if args.doc else ""}`.

A step publishes a progress event (the row, then Redis's channel layer, daphne's consumer, the
page's socket); the owner's page in Chromium stamps each message on arrival.

| events received | p50 | p95 | max |
|---|---|---|---|
| {result["received"]}/{result["events"]} | {result["p50_ms"]} ms | {result["p95_ms"]} ms | {result["max_ms"]} ms |
""",
        )
    return 0 if len(latencies) == args.events else 1


if __name__ == "__main__":
    sys.exit(main())
