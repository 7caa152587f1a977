import time


def wait_for_task(task, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task.refresh_from_db()
        if task.is_finished:
            return task
        time.sleep(0.3)
    raise AssertionError(f"task {task.pk} still {task.status}/{task.stage} after {timeout}s")
