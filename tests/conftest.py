import contextlib
import os

import pytest
from django.conf import settings

from gryphgen_site import bundle, stack
from gryphgen_site.celery import app as celery_app
from tests.helpers import database_url_for_processes
from tests.stack_env import SCRIPTED_LLM, TEST_VAR


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def llm():
    """The scripted LLM server, emptied for this test."""
    SCRIPTED_LLM.reset()
    yield SCRIPTED_LLM
    SCRIPTED_LLM.reset()


@pytest.fixture
def eager():
    """Run canvases in-process (logic tests); a few tests use a real worker instead."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("owner", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user("stranger", password="pw")


@pytest.fixture
def project(user):
    from agents.models import Mode, Project

    return Project.objects.create(owner=user, name="demo", default_mode=Mode.PIPELINE)  # the tests name other modes


def _llama(name, model, parallel, ctx):
    url = f"http://127.0.0.1:{stack.free_port()}"
    service = stack.start_llama(url, model, TEST_VAR / "log", name=name, parallel=parallel, ctx=ctx)
    return url, service


@pytest.fixture(scope="session")
def smollm_url():
    """A real llama-server with SmolLM2-135M: fast, for bookkeeping tests."""
    url, service = _llama("llama-smollm2", bundle.smollm2_path(), 2, 4096)
    yield url
    service.stop()


@pytest.fixture(scope="session")
def bundled_url():
    """A real llama-server with the bundled Qwen2.5-Coder-0.5B model."""
    url, service = _llama("llama-bundled", settings.GRYPHGEN_MODEL_PATH, 2, 8192)
    yield url
    service.stop()


@pytest.fixture(scope="session")
def large_url():
    """A real llama-server with the larger bundled model, Qwen2.5-Coder-1.5B."""
    url, service = _llama("llama-large", settings.GRYPHGEN_LARGE_MODEL_PATH, 2, 8192)
    yield url
    service.stop()


@contextlib.contextmanager
def running_worker(extra_env=None):
    """A real Celery worker process on the real broker and the test database."""
    env = {"DATABASE_URL": database_url_for_processes(), **(extra_env or {})}
    hostname = f"test-{os.getpid()}-{stack.free_port()}@%h"
    service = stack.start_worker(
        TEST_VAR / "log", name="celery-test-worker", hostname=hostname, loglevel="INFO", gossip=False, env=env
    )
    try:
        yield service
    finally:
        service.stop()
        celery_app.control.purge()


@pytest.fixture
def worker(transactional_db):
    with running_worker() as service:
        yield service
