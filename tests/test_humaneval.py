"""The HumanEval harness: real problems as real tasks, scored on hidden tests that no agent sees."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents import sandbox, verdict
from agents.models import AgentCall, SandboxRun, Task
from benchmarks import problems, scoring, task_request
from memory import retrieval, store
from memory.models import MemoryEntry
from tests.conftest import running_worker

PROBLEMS = problems.load_humaneval()
FIRST, SECOND = "HumanEval/0", "HumanEval/2"  # the dev split's first two


def reply_with(problem_id, body=None):
    """A generator reply: the prompt completed with `body` (default: the canonical solution)."""
    problem = PROBLEMS[problem_id]
    return f"```python\n{problem['prompt']}{body or problem['canonical_solution']}\n```"


# truncate_number(3.5) == 0.5 is the docstring's only example; this passes it and fails `check`
WRONG_SECOND = reply_with(SECOND, "    return 0.5\n")


def bench(out, *args):
    call_command("gryphgen", "bench", "humaneval", "--out", str(out), "--split", "dev", *args)


def load(out, mode="single"):
    return json.loads((out / f"{mode}-dev.json").read_text())


def hidden_lines(problem_id):
    """The lines of a problem's hidden test (longer than a bracket) that its prompt does not also show."""
    problem = PROBLEMS[problem_id]
    shown = {line.strip() for line in problem["prompt"].splitlines()}
    return [
        line.strip() for line in problem["test"].splitlines() if len(line.strip()) > 3 and line.strip() not in shown
    ]


# --- problems, splits and requests ------------------------------------------------------------


# --- the harness through the stack ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_problems_score_one_of_two_and_the_hidden_tests_stay_hidden(eager, llm, tmp_path, monkeypatch):
    runs = []
    real_run = sandbox.run

    def spy(files, command, limits=None, **kwargs):
        runs.append({"files": dict(files), "busy": Task.objects.exclude(status__in=Task.TERMINAL).count()})
        return real_run(files, command, limits, **kwargs)

    monkeypatch.setattr(sandbox, "run", spy)
    llm.script("generate", reply_with(FIRST), reply_with(FIRST), WRONG_SECOND)
    bench(tmp_path, "--mode", "single,pipeline", "--limit", "2", "--concurrency", "2")

    single, pipeline = load(tmp_path), load(tmp_path, "pipeline")
    for result in (single, pipeline):
        assert result["partial"] is False and list(result["problems"]) == [FIRST, SECOND]
        assert [row["pass"] for row in result["problems"].values()] == [True, False]
        assert result["totals"]["pass_at_1"] == 0.5 and result["totals"]["tokens_per_solved"] > 0
        for row in result["problems"].values():
            assert row["tokens"] > 0 and row["rounds"] == 1 and row["wall_seconds"] >= 0
            assert row["verdict_source"] == "doctest" and row["status"] == "accepted"  # the example passed
    second = Task.objects.get(pk=single["problems"][SECOND]["task"])
    assert second.status == "accepted" and second.sandbox_runs.get(purpose="score").status == "failed"
    assert "AssertionError" in second.sandbox_runs.get(purpose="score").stderr

    # the hidden `check` ran only in scoring runs, each after every task had finished
    hidden = [run for run in runs if any("def check(candidate)" in src for src in run["files"].values())]
    assert len(hidden) == 4 and all(scoring.SCORE_FILE in run["files"] and run["busy"] == 0 for run in hidden)
    assert SandboxRun.objects.filter(purpose="score").count() == 4
    # ... and no line of it reached an agent or a verdict test
    prompts = "\n".join(json.dumps(call.prompt) for call in AgentCall.objects.all())
    tests = "\n".join(json.dumps(task.verdict_tests) for task in Task.objects.all())
    for problem_id in (FIRST, SECOND):
        lines = hidden_lines(problem_id)
        assert lines and not [line for line in lines if json.dumps(line)[1:-1] in prompts + tests]

    summary = json.loads((tmp_path / "summary-dev.json").read_text())
    assert summary["modes"]["pipeline"]["vs_single"] == {"problems": 2, "difference": 0.0, "ci95": [0.0, 0.0]}
    assert (tmp_path / "humaneval-dev.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.django_db(transaction=True)
def test_resume_skips_finished_problems(eager, llm, tmp_path):
    llm.script("generate", reply_with(FIRST))
    bench(tmp_path, "--mode", "single", "--limit", "1")
    assert load(tmp_path)["partial"] is False and Task.objects.count() == 1
    with pytest.raises(CommandError, match="exists: pass --resume"):
        bench(tmp_path, "--mode", "single", "--limit", "2")
    with pytest.raises(CommandError, match="was run with settings"):
        bench(tmp_path, "--mode", "single", "--limit", "2", "--resume", "--budget-tokens", "5000")
    llm.reset()
    llm.script("generate", reply_with(SECOND))
    bench(tmp_path, "--mode", "single", "--limit", "2", "--resume")
    result = load(tmp_path)
    assert Task.objects.count() == 2 and llm.purposes() == ["generate"]  # only the second problem ran
    assert [row["pass"] for row in result["problems"].values()] == [True, True] and result["partial"] is False


@pytest.mark.django_db(transaction=True)
def test_resume_waits_for_a_task_left_in_flight_instead_of_submitting_it_again(eager, llm, tmp_path):
    llm.script("generate", reply_with(FIRST))
    bench(tmp_path, "--mode", "single", "--limit", "1")
    interrupted = load(tmp_path)
    row = interrupted["problems"].pop(FIRST)  # as if the run had stopped while the task was running
    interrupted["in_flight"] = {FIRST: row["task"]}
    (tmp_path / "single-dev.json").write_text(json.dumps(interrupted))
    bench(tmp_path, "--mode", "single", "--limit", "1", "--resume")
    result = load(tmp_path)
    assert Task.objects.count() == 1 and result["in_flight"] == {} and result["partial"] is False
    assert result["problems"][FIRST]["task"] == row["task"] and result["problems"][FIRST]["pass"] is True


def test_an_llm_that_dies_mid_run_leaves_a_partial_result(worker, llm, tmp_path, monkeypatch):
    llm.script("generate", reply_with(FIRST))
    real_score, real_reply = scoring.score, llm.next_reply
    dead = []

    def reply(purpose):
        if dead:
            raise ConnectionAbortedError("the LLM server died")  # the scripted server drops the connection
        return real_reply(purpose)

    def score_then_kill_the_llm(task, problem):
        dead.append(True)
        return real_score(task, problem)

    monkeypatch.setattr(llm, "next_reply", reply)
    monkeypatch.setattr(scoring, "score", score_then_kill_the_llm)
    with pytest.raises(CommandError, match=r"2 problems in a row ended in error .*server unavailable"):
        bench(tmp_path, "--mode", "single", "--limit", "4", "--concurrency", "1", "--max-consecutive-errors", "2")
    result = load(tmp_path)
    assert result["partial"] is True and "--resume" in result["partial_reason"]
    rows = result["problems"]
    assert list(rows) == [FIRST, SECOND, "HumanEval/4"] and rows[FIRST]["pass"] is True
    assert [rows[p]["status"] for p in (SECOND, "HumanEval/4")] == ["error", "error"]
    assert not rows[SECOND]["pass"] and "not scored" in rows[SECOND]["score"]
    assert result["totals"] == {**result["totals"], "selected": 4, "done": 3, "passed": 1, "errors": 2}
    assert json.loads((tmp_path / "summary-dev.json").read_text())["partial"] is True


@pytest.mark.django_db(transaction=True)
def test_memory_runs_have_a_memory_of_their_own_that_never_returns_the_same_problem(eager, llm, tmp_path):
    llm.script("generate", reply_with(FIRST))
    bench(tmp_path, "--mode", "single", "--limit", "1", "--memory")
    result = json.loads((tmp_path / "single-dev-memory.json").read_text())
    assert result["settings"]["memory"] is True and result["problems"][FIRST]["pass"]
    entry = MemoryEntry.objects.get(key=FIRST)  # accepted on the examples, stored for the memory user only
    assert (entry.owner.username, entry.kind, entry.embedded) == ("bench-memory", "solution", True)

    bench(tmp_path, "--mode", "single", "--limit", "1", "--memory", "--fresh")  # the same problem again
    again = Task.objects.filter(memory_key=FIRST).latest("id")
    assert again.project.use_memory and AgentCall.objects.get(task=again, purpose="generate").memories == []
    assert retrieval.search(entry.owner_id, again.request).hits[0].entry.key == FIRST  # found, were it not excluded
    assert json.loads((tmp_path / "single-dev-memory.json").read_text())["problems"][FIRST]["memories"] == 0

    store.ingest_document(entry.owner, "notes.txt", entry.content.encode())  # the same text, another source
    bench(tmp_path, "--mode", "single", "--limit", "1", "--memory", "--fresh")
    assert json.loads((tmp_path / "single-dev-memory.json").read_text())["problems"][FIRST]["memories"] >= 1

    bench(tmp_path, "--mode", "single", "--limit", "1")  # memory off: no retrieval at all
    off = Task.objects.filter(memory_key=FIRST).latest("id")
    assert off.project.owner.username == "bench" and not off.project.use_memory
    assert not (tmp_path / "single-dev.json").read_text().count('"memory": true')


@pytest.mark.django_db(transaction=True)
def test_a_variant_renames_the_function_and_is_answered_by_the_original_solution(eager, llm, tmp_path):
    variant = problems.variant(PROBLEMS[FIRST])
    request, count = task_request.build_request(variant)
    assert variant["entry_point"] == "has_close_elements_v2" and count == 2
    assert verdict.entry_point(request) == "has_close_elements_v2" and "has_close_elements(" not in request

    llm.script("generate", reply_with(FIRST))  # the last scripted reply repeats
    bench(tmp_path, "--mode", "single", "--limit", "1", "--variant")  # the old name: the hidden check fails
    off = json.loads((tmp_path / "single-dev-variant.json").read_text())
    assert off["settings"]["variant"] is True and off["problems"][FIRST]["pass"] is False

    bench(tmp_path, "--mode", "single", "--limit", "1", "--memory")  # the original, accepted and remembered
    original = MemoryEntry.objects.get(key=FIRST)
    bench(tmp_path, "--mode", "single", "--limit", "1", "--memory", "--variant")
    row = json.loads((tmp_path / "single-dev-variant-memory.json").read_text())["problems"][FIRST]
    task = Task.objects.get(pk=row["task"])
    assert task.memory_key == f"{FIRST} variant" and not task.calls.exists()  # no model call
    assert row["pass"] and (row["reused"], row["tokens"], row["memories"]) == (original.pk, 0, 0)


def test_every_dev_b_variant_is_scored_on_the_renamed_function():
    def score(problem, code):
        return scoring.hidden_check({"solution.py": code}, problem)

    # the reference solutions under the new names pass the hidden checks (in the sandbox)
    for problem_id in [*problems.select(PROBLEMS, "dev-b"), "HumanEval/33"]:  # 33's test calls it by name
        problem = problems.variant(PROBLEMS[problem_id])
        passed, result = score(problem, problem["prompt"] + problem["canonical_solution"])
        assert passed, (problem_id, result.stderr[-300:])
    old_name = PROBLEMS[FIRST]["prompt"] + PROBLEMS[FIRST]["canonical_solution"]
    passed, result = score(problems.variant(PROBLEMS[FIRST]), old_name)
    assert not passed and "ImportError" in result.stderr


@pytest.mark.parametrize("leave", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"])
def test_code_that_leaves_at_import_is_not_scored_a_pass(leave):
    """The hidden check passes only when its script reaches the end, not on exit code 0."""
    problem = PROBLEMS[FIRST]
    code = problem["prompt"] + problem["canonical_solution"]
    assert scoring.hidden_check({"solution.py": code}, problem)[0]
    passed, result = scoring.hidden_check({"solution.py": leave + code}, problem)
    assert result.status == "passed" and not passed  # exit code 0, and still no pass


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--mode", "single,telepathy"], "Unknown mode 'telepathy'"),
        (["--mode", "single@huge"], "Unknown model 'huge'"),
        (["--mode", "pipeline", "--budget-tokens", "0"], "--budget-tokens must be greater than 0"),
        (["--mode", "pipeline", "--budget-seconds", "-3"], "--budget-seconds must be greater than 0"),
        (["--mode", "single", "--limit", "83"], "--limit 83 is more than the 82 problems"),
        (["--mode", "single", "--concurrency", "0"], "--concurrency must be greater than 0"),
        (["--mode", "single", "--suite", "owner", "--variant"], "the owner-request suite has no variants"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_refused_before_anything_runs(tmp_path, args, error):
    with pytest.raises(CommandError, match=error):
        bench(tmp_path, *args)
    assert not Task.objects.exists() and not list(tmp_path.iterdir())


@pytest.mark.django_db(transaction=True)
def test_no_worker_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No Celery worker answered"):
        bench(tmp_path, "--mode", "single", "--limit", "1")
    assert not Task.objects.exists()


@pytest.mark.llama
@pytest.mark.django_db(transaction=True)
def test_smollm2_problem_through_a_real_worker(smollm_url, tmp_path):
    # one slow answer on a busy machine should count, not time out: one try with a long timeout
    with running_worker({"GRYPHGEN_LLM_URL": smollm_url, "GRYPHGEN_LLM_TIMEOUT": "600", "GRYPHGEN_LLM_RETRIES": "0"}):
        bench(tmp_path, "--mode", "single", "--limit", "1", "--task-timeout", "750")
    result = load(tmp_path)
    row = result["problems"][FIRST]
    assert result["partial"] is False and row["status"] in ("accepted", "failed"), row
    assert row["tokens"] > 0 and row["rounds"] == 1 and row["wall_seconds"] > 0
    assert "SmolLM2" in result["model"]
    task = Task.objects.get(pk=row["task"])
    assert task.sandbox_runs.filter(purpose="score").count() == (1 if row["checkpoint"] else 0)


@pytest.mark.django_db(transaction=True)
def test_the_owner_suite_counts_accepted_but_wrong_and_tokens_by_model(eager, llm, tmp_path):
    owner = problems.load_owner_requests()
    slugify, wrap = owner["Owner/0"], owner["Owner/2"]  # prose (monitor's tests), and one with examples
    # no ValueError below width 1: passes the four examples, fails the hidden check
    wrong_wrap = wrap["canonical_solution"].replace('raise ValueError("width must be at least 1")', "return []")
    llm.script("monitor_tests", {"tests": [{"call": "slugify('A b')", "expected": "'a-b'"}]})
    fenced = [f"```python\n{code}\n```" for code in (slugify["canonical_solution"], wrong_wrap)]
    llm.script("generate", fenced[0], fenced[0], fenced[1], fenced[1])
    bench(tmp_path, "--suite", "owner", "--mode", "single,single@large", "--limit", "2")
    small = json.loads((tmp_path / "single-owner-dev.json").read_text())
    large = json.loads((tmp_path / "single@large-owner-dev.json").read_text())
    for result in (small, large):
        assert list(result["problems"]) == ["Owner/0", "Owner/2"] and result["benchmark"] == "owner"
        assert [row["pass"] for row in result["problems"].values()] == [True, False]
        assert [row["best_code"] for row in result["problems"].values()] == [True, False]
        assert (result["totals"]["accepted"], result["totals"]["accepted_wrong"]) == (2, 1)
        assert result["totals"]["accepted_wrong_share"] == 0.5
    requests = [r["body"] for r in llm.requests if r["purpose"] == "generate"]
    assert [body["model"] for body in requests] == ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"] * 2
    assert set(small["problems"]["Owner/0"]["tokens_by_model"]) == {"scripted"}
    summary = json.loads((tmp_path / "summary-owner-dev.json").read_text())
    assert summary["modes"]["single@large"]["vs_single"]["problems"] == 2
    # the hidden check never reached an agent
    prompts = "\n".join(json.dumps(call.prompt) for call in AgentCall.objects.all())
    assert "def check(candidate)" not in prompts


def test_runs_of_one_split_under_different_settings_never_share_a_name(settings):
    from benchmarks.command import run_name

    options = {"split": "dev", "suite": "owner", "variant": False, "memory": False}
    assert run_name(options) == "owner-dev"
    settings.GRYPHGEN_ROSTER = {**settings.GRYPHGEN_ROSTER, "monitor": "small"}
    settings.GRYPHGEN_CONSENSUS_SET_ASIDE = False
    assert run_name(options) == "owner-dev-set-aside-off-monitor-small"
