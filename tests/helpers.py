import time


def wait_for_task(task, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task.refresh_from_db()
        if task.is_finished:
            return task
        time.sleep(0.3)
    raise AssertionError(f"task {task.pk} still {task.status}/{task.stage} after {timeout}s")


def point_model_at(settings, model, urls):
    """Serve the roster's `model` ("small", "large") from `urls` for this test."""
    settings.GRYPHGEN_MODELS = {**settings.GRYPHGEN_MODELS, model: {**settings.GRYPHGEN_MODELS[model], "urls": urls}}


def database_url_for_processes():
    """DATABASE_URL of the test database, password included, for processes the tests start."""
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}:{quote(db['PASSWORD'])}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
