"""The owner's flow in a real browser: sign in, submit a request, watch it progress live over the websocket.

Everything is real except the LLM (the scripted server): daphne serves the ASGI app, a Celery worker
runs the canvas, Debian's chromium (driven by Playwright) renders the pages and runs their JS.
"""

import json
import os
import re
import shutil
import threading

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from agents.models import Task
from gryphgen_site import stack
from tests.helpers import database_url_for_processes
from tests.stack_env import TEST_VAR
from tests.test_workflow_branches import GOOD, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 15_000
# published only after the page's socket opened (the generator's reply is held until then)
LIVE_STAGES = ["generate", "analyze", "execute", "monitor", "decide", "done"]
# Counts the page's websocket opens, so the test knows when the page is subscribed.
TRACK_SOCKETS = """window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); this.addEventListener("open", () => { window.socketsOpened = (window.socketsOpened || 0) + 1; }); }
};"""
# Open a websocket to `url`; resolve with its close code (null if still open after 5 s) and what it received.
# The consumer refuses before accepting, so daphne rejects the handshake: browsers report that as 1006.
TRY_SOCKET = """url => new Promise(resolve => {
  const socket = new WebSocket(url), messages = [];
  socket.onmessage = message => messages.push(message.data);
  socket.onclose = event => resolve({code: event.code, messages});
  setTimeout(() => resolve({code: null, messages}), 5000);
})"""


@pytest.fixture
def web(transactional_db):
    """The web server as `make run` starts it (daphne, unprivileged under root) on a free loopback
    port and the test database; yields its base URL."""
    port = stack.free_port()
    secrets = {
        "DATABASE_URL": database_url_for_processes(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "GRYPHGEN_SECRET_KEY": settings.SECRET_KEY,
    }
    service = stack.start_web(port, TEST_VAR / "log", secrets, name="web-browser-test")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


@pytest.fixture
def browser(monkeypatch):
    # The sync API runs Playwright's event loop in this thread; Django's async guard would refuse the
    # test's ORM calls, though no coroutine ever touches the database.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not on PATH: apt-get install chromium (`make test` does, once: var/.chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        connections.close_all()  # the ORM opened its own connections under Playwright's loop


@pytest.fixture
def generate_gate(llm, monkeypatch):
    """Hold the code generator's reply until the gate opens, so the task is still running when the page loads."""
    gate = threading.Event()
    reply = llm.next_reply

    def gated(purpose):
        if purpose == "generate":
            gate.wait(TIMEOUT_MS / 1000)
        return reply(purpose)

    monkeypatch.setattr(llm, "next_reply", gated)
    yield gate
    gate.set()


def set_served_password(user):
    """daphne checks passwords with the default hashers, not the tests' fast MD5 one."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode("pw", hasher.salt())
    user.save(update_fields=["password"])


def sign_in(context, base, username, next_path):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{next_path}")
    return page


def test_owner_watches_task_live_and_stranger_sees_nothing(
    web, worker, llm, generate_gate, browser, project, django_user_model
):
    llm.script("generate", GOOD)
    other = django_user_model.objects.create_user("other")  # an owner who is not staff
    for user in (project.owner, other):
        set_served_password(user)

    owner = browser.new_context()
    owner.add_init_script(TRACK_SOCKETS)
    page = sign_in(owner, web, "owner", project.get_absolute_url())
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))))
    page.fill("textarea[name=request]", REQUEST)
    page.get_by_role("button", name="Submit request").click()
    page.wait_for_url(f"{web}/tasks/*/")
    task = Task.objects.get(project=project)
    assert page.url == f"{web}{task.get_absolute_url()}"
    page.wait_for_function("window.socketsOpened === 1")
    page.evaluate("window.firstLoad = true")  # a reload drops it: rows shown while it is set came live
    generate_gate.set()

    # checked inside the page, so atomically: `done` and the final status arrive before any reload
    live = page.wait_for_function(
        """() => window.firstLoad && document.getElementById("status").textContent === "accepted"
                 && [...document.querySelectorAll("#events tr")]
                    .map(row => [Number(row.dataset.id), row.cells[1].textContent, row.cells[0].textContent])""",
    ).json_value()
    events = list(task.events.values_list("pk", "stage"))
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", when) for _, _, when in live), live  # as the stored rows show time
    shown = [tuple(row[:2]) for row in live]
    assert shown == sorted(set(shown)) and set(shown) <= set(events), shown  # each event once, in order
    assert set(LIVE_STAGES) <= {stage for _, stage in shown} and shown[-1][1] == "done", shown
    assert {(f["id"], f["stage"]) for f in frames} <= set(events) and {f["task"] for f in frames} == {task.pk}
    assert set(LIVE_STAGES) <= {f["stage"] for f in frames} and frames[-1]["status"] == "accepted", frames

    # then the page reloads itself and renders the finished task from the database
    page.wait_for_function("() => !window.firstLoad")
    expect(page.locator("#status")).to_have_text("accepted")
    expect(page.locator("#events tr td:nth-child(2)")).to_have_text([stage for _, stage in events])
    expect(page.locator("h3")).to_contain_text(["Round 1: 3/3 verdict tests, accept, commit"])
    expect(page.locator("#timeline")).to_contain_text("generator: generate")
    assert Task.objects.get(pk=task.pk).status == Task.Status.ACCEPTED

    stranger = sign_in(browser.new_context(), web, "other", "/")
    assert stranger.goto(f"{web}{task.get_absolute_url()}").status == 404
    assert "slugify" not in stranger.content()
    refused = stranger.evaluate(TRY_SOCKET, f"{web.replace('http', 'ws')}/ws/tasks/{task.pk}/")
    assert refused["code"] == 4403 and not refused["messages"], refused


@pytest.fixture
def two_deploys(eager, llm, project, settings):
    """Run before the browser starts (its event loop would refuse the progress pushes): a task whose
    first round fails and second passes, then another task; both deployed."""
    from agents.services import submit_task
    from tests.test_workflow_branches import BAD

    settings.GRYPHGEN_MEMORY_REUSE_MATCH = 2
    llm.script("generate", BAD, GOOD)
    llm.script("decide", {"decision": "repair", "reason": "fix it"}, {"decision": "accept", "reason": "ok"})
    first = submit_task(project, REQUEST, max_rounds=2)
    llm.reset()
    llm.script("generate", GOOD)
    submit_task(project, REQUEST + "\nAlso trim.\n", mode="single")
    return first


def test_owner_reads_the_failing_test_rolls_back_downloads_and_changes_settings(
    web, worker, two_deploys, browser, project, django_user_model
):
    """The console's other flows, in Chromium; screenshots land in var/test/screenshots/."""
    import io
    import zipfile

    from agents.models import Deployment

    first = two_deploys
    shots = TEST_VAR / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    other = django_user_model.objects.create_user("other")
    for user in (project.owner, other):
        set_served_password(user)

    page = sign_in(browser.new_context(accept_downloads=True), web, "owner", first.get_absolute_url())
    expect(page.locator("#round-1-0 .tests")).to_contain_text("returned nothing, expected 'hello-world'")
    expect(page.locator("#round-2-0 details summary")).to_have_text("Diff against round 1, which it repaired")
    page.screenshot(path=str(shots / "task-page.png"), full_page=True)

    page.goto(f"{web}{project.get_absolute_url()}")
    expect(page.locator("#deployments")).to_contain_text("deployed now")
    with page.expect_download() as download:
        page.click("#download")
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    assert any(name.endswith("/solution.py") for name in archive.namelist())
    page.get_by_role("button", name="Roll back to this").click()
    page.wait_for_load_state()
    expect(page.locator(".message")).to_contain_text("Rolling back to")
    deadline = TIMEOUT_MS / 1000
    for _ in range(int(deadline * 2)):  # the worker moves `deployed`
        if Deployment.objects.filter(project=project).first().kind == "rollback":
            break
        threading.Event().wait(0.5)
    assert Deployment.objects.filter(project=project).first().checkpoint.task == first

    page.goto(f"{web}{project.get_absolute_url()}")
    page.select_option("#id_default_mode", "single")
    page.fill("#id_budget_tokens", "-1")
    page.get_by_role("button", name="Save settings").click()  # the browser refuses it (min="0"); the server would too
    assert page.locator("#id_budget_tokens").evaluate("e => e.validity.rangeUnderflow")
    page.fill("#id_budget_tokens", "4000")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".message")).to_contain_text("Settings saved; the budgets apply to the next task")
    page.screenshot(path=str(shots / "project-page.png"), full_page=True)
    project.refresh_from_db()
    assert project.default_mode == "single" and project.policies.get().values["budget_tokens"] == 4000

    stranger = sign_in(browser.new_context(), web, "other", "/")
    for path in (project.get_absolute_url(), f"/projects/{project.pk}/download", first.get_absolute_url()):
        assert stranger.goto(f"{web}{path}").status == 404, path
    assert (shots / "task-page.png").stat().st_size > 0 and (shots / "project-page.png").stat().st_size > 0
