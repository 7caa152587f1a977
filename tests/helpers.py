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
