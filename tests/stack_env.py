"""pytest plugin (loaded with `-p`, before Django reads its settings): the test stack.

The tests run on their own embedded PostgreSQL + pgvector, Redis and embedding server (llama-server
`--embeddings`, all-MiniLM-L6-v2) under `var/test/` on free loopback ports (gryphgen_site.stack's
`services`, as the benchmarks do), and by default on the scripted LLM server; real chat
llama-servers are fixtures in conftest.py. The servers start once the tests are collected,
unless every one is in tests/fast/ (the fast tier: pure logic, no servers). Nothing here skips:
if a part cannot start, the session fails.
"""

import contextlib
import os
import shutil
import signal
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
_stack = contextlib.ExitStack()
SERVICES = {}  # by name, once started; a drill that restarts one puts the new one here
FAST = BASE / "tests" / "fast"  # the fast tier: pure logic, no servers


def pytest_collection_finish(session):
    """Start the real parts once collection is done, unless every test is in the fast tier."""
    if all(Path(item.path).is_relative_to(FAST) for item in session.items):
        return
    shutil.rmtree(TEST_VAR / "workspaces", ignore_errors=True)
    shutil.rmtree(TEST_VAR / "redis", ignore_errors=True)  # no messages left from an earlier run
    # a SIGTERM (a CI time limit, a kill) ends the session as Ctrl-C does: the fixtures' workers and
    # llama-servers are torn down and pytest_unconfigure stops these, so no run leaves them behind
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    global SERVICES
    SERVICES = _stack.enter_context(stack.services(TEST_VAR))  # stops what the dict holds at the end


def pytest_unconfigure(config):
    _stack.close()
