"""Bad input that used to crash a step or a page: each gets a clear message and leaves the
database consistent (NUL bytes, nesting deeper than the compiler's stack, thousands of examples)."""

import pytest
from django.core.exceptions import ValidationError

from agents import sandbox, verdict
from agents.models import SandboxRun, Task
from agents.services import submit_task
from memory import chunking, store
from memory.models import MemoryEntry
from tests.test_workflow_branches import GOOD, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


def test_nul_bytes_in_a_model_reply_are_stored_as_text(eager, llm, project):
    llm.script("generate", GOOD.replace("import re", "import re  # \x00 a NUL the model wrote"))
    task = submit_task(project, REQUEST, mode="single")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    call = task.calls.get(role="generator")
    assert "\x00" not in call.response and "\ufffd a NUL" in call.response


def test_nul_bytes_in_sandbox_output_are_stored_as_text(eager, llm, project):
    llm.script("generate", GOOD.replace("import re", "import re\nimport sys\nsys.stderr.write('before\\x00after')"))
    task = submit_task(project, REQUEST, mode="single")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    run = SandboxRun.objects.filter(task=task, purpose="verdict").get()
    assert "before\ufffdafter" in run.stdout + run.stderr


def test_a_nul_byte_after_the_first_8_kb_of_an_upload_is_refused(user):
    data = b"x = 1\n" * 2000 + b"\x00"
    with pytest.raises(chunking.DocumentError, match="NUL"):
        store.ingest_document(user, "late-nul.py", data)
    assert not MemoryEntry.objects.exists()


@pytest.mark.parametrize("nested", ["-" * 30_000 + "1", "(" * 300 + ")" * 300, "not " * 15_000 + "x"])
def test_acceptance_tests_nested_deeper_than_the_compiler_are_a_form_error(project, nested):
    with pytest.raises(ValidationError, match="not valid Python"):
        submit_task(project, REQUEST, acceptance_tests=f"def test_deep():\n    assert {nested}\n")
    assert not Task.objects.exists()


def test_thousands_of_examples_become_a_bounded_number_of_verdict_files():
    request = "Write `f(x)` returning x.\n\n" + "".join(f">>> f({i})\n{i}\n" for i in range(3000))
    files = verdict.doctest_files(request)
    assert len(files) == verdict.MAX_DOCTEST_FILES
    assert sum(body.count(">>> f(") for body in files.values()) == 3000
    result = sandbox.run_tests({"solution.py": "def f(x):\n    return x\n"}, files)
    assert result.status == "passed" and len(result.tests) == verdict.MAX_DOCTEST_FILES


def test_more_files_than_the_work_dir_holds_is_a_clean_refusal():
    files = {f"m{i}.py": "x = 1\n" for i in range(20_000)}
    result = sandbox.run(files, ["/runtime/bin/python", "-c", "pass"])
    assert result.status == "refused" and "does not fit in the work dir" in result.stderr
