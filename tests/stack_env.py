"""pytest plugin (loaded with `-p`, before Django reads its settings): the test stack.

The tests run on their own embedded PostgreSQL + pgvector and Redis (under `var/test/`, on free
loopback ports) and, by default, on the scripted LLM server. The real embedding server (llama-server
`--embeddings`, all-MiniLM-L6-v2) runs for the whole session; real chat llama-servers are fixtures
in conftest.py. Nothing here skips: if a part cannot start, the session fails.
"""

import os
import shutil
from pathlib import Path

from gryphgen_site import stack
from tests.scripted_llm import ScriptedLLM

BASE = Path(__file__).resolve().parent.parent
TEST_VAR = Path(os.environ.get("GRYPHGEN_TEST_VAR", BASE / "var" / "test"))  # two suites side by side: set it
SCRIPTED_LLM = ScriptedLLM()

os.environ.update(
    {
        **stack.isolated_environment(BASE, TEST_VAR),
        "GRYPHGEN_LLM_RETRIES": "1",
        "GRYPHGEN_LLM_RETRY_BACKOFF": "1",
        "GRYPHGEN_LLM_TIMEOUT": "120",
        "GRYPHGEN_DB_CONN_MAX_AGE": "0",
        "GRYPHGEN_LLM_URL": SCRIPTED_LLM.url,
        "GRYPHGEN_LARGE_LLM_URL": SCRIPTED_LLM.url,  # both models scripted; the request names which
    }
)
_services = []


def pytest_configure(config):
    shutil.rmtree(TEST_VAR / "workspaces", ignore_errors=True)
    stack.make_private(TEST_VAR)
    logs = TEST_VAR / "log"
    _services.append(stack.start_postgres(os.environ["DATABASE_URL"], TEST_VAR / "pg", logs))
    shutil.rmtree(TEST_VAR / "redis", ignore_errors=True)
    _services.append(stack.start_redis(os.environ["REDIS_URL"], TEST_VAR / "redis", logs))
    _services.append(
        stack.start_embedder(os.environ["GRYPHGEN_EMBED_URL"], Path(os.environ["GRYPHGEN_EMBED_MODEL_PATH"]), logs)
    )


def pytest_unconfigure(config):
    for service in reversed(_services):
        service.stop()
