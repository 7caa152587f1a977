"""Deploy and rollback: `deployed` moves only to code whose verdict tests pass, and back on request."""

import os
import time

import pytest
from django.urls import reverse

from agents import deploy, pipeline, replies, sandbox, workspace
from agents.models import Checkpoint, Deployment, Task
from agents.services import submit_task
from guardians.models import Alert
from tests.test_workflow_branches import BAD, GOOD, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_V2 = (
    '```python\nimport re\n\n\ndef slugify(text):\n    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))\n```'
)
MULTI = (
    "```python\n# file: solution.py\nfrom textutil.slug import slugify\n```\n\n"
    "```python\n# file: textutil/__init__.py\n```\n\n"
    '```python\n# file: textutil/slug.py\nimport re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", '
    'text.lower()).strip("-")\n```\n\n'
    "```python\n# file: test_mine.py\ndef test_self_certified():\n    assert True\n```"
)


@pytest.fixture
def project(project):
    project.use_memory = False  # these tests deploy different code for one request: no answering from memory
    project.save()
    return project


def accepted(project, reply, llm):
    llm.reset()  # a script's last reply repeats: start each task afresh
    llm.script("generate", reply)
    task = submit_task(project, REQUEST)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    return task


def deployed_state(project):
    ws = project.workspace
    return workspace.deployed_commit(ws), workspace.checked_out_tree(ws)


def test_each_accepted_task_deploys_and_the_owner_rolls_back_in_the_admin(eager, llm, project, client, user):
    first = accepted(project, GOOD, llm)
    second = accepted(project, GOOD_V2, llm)
    d1, d2 = Deployment.objects.filter(project=project).order_by("id")
    assert (d1.checkpoint.task, d2.checkpoint.task, d2.previous) == (first, second, d1)
    assert deployed_state(project) == (d2.commit_sha, d2.tree_sha) and d1.tree_sha != d2.tree_sha
    log = workspace.git(workspace.repo_of(project.workspace), "log", "--format=%s", d2.commit_sha)
    assert log.splitlines()[0].startswith(f"Task {second.pk}, checkpoint {d2.checkpoint_id}")

    client.force_login(user)
    url = reverse("admin:agents_deployment_changelist")
    response = client.post(url, {"action": "roll_back", "_selected_action": [d1.pk]}, follow=True)
    assert f"back to {d1.commit_sha[:10]}" in response.content.decode()  # queued for a worker (run eagerly here)
    rollback = deploy.current(project)
    assert (rollback.kind, rollback.commit_sha, rollback.previous, rollback.created_by) == ("rollback", d1.commit_sha,
                                                                                             d2, user)  # fmt: skip
    assert deployed_state(project) == (d1.commit_sha, d1.tree_sha)
    assert (project.workspace / "deployed" / "solution.py").read_text() == d1.checkpoint.files["solution.py"]

    with pytest.raises(deploy.DeployError, match="already deployed"):
        deploy.rollback(d1)


def test_a_deploy_whose_tests_fail_leaves_the_previous_deployment(eager, llm, project):
    accepted(project, GOOD, llm)
    before = deployed_state(project)
    llm.reset()
    llm.script("generate", BAD)
    task = submit_task(project, REQUEST, max_rounds=1)  # gives up after one round
    cp = Checkpoint.objects.create(
        task=task, round=9, files={"solution.py": "def slugify(t):\n    return t\n"}, stage="decided", decision="accept"
    )  # as if the optimizer had accepted it
    with pytest.raises(deploy.DeployError) as caught:
        deploy.deploy(Checkpoint.objects.get(pk=cp.pk))
    assert caught.value.kind == "tests"
    assert deployed_state(project) == before and Deployment.objects.filter(project=project).count() == 1
    run = cp.runs.get(purpose="deploy")
    assert run.status == "failed", run.stderr


def test_a_deploy_whose_commit_fails_leaves_the_previous_deployment(eager, llm, project):
    accepted(project, GOOD, llm)
    before = deployed_state(project)
    files_before = workspace.main_files(project.workspace)
    repo = workspace.repo_of(project.workspace)
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")  # another git process, as far as git can tell (a fresh lock is never cleared)
    try:
        llm.reset()
        llm.script("generate", GOOD_V2)
        task = submit_task(project, REQUEST)
        task.refresh_from_db()
    finally:
        lock.unlink()
    assert task.status == Task.Status.ERROR
    assert "not deployed" in task.message and "previous deployment stays" in task.message
    assert deployed_state(project) == before and Deployment.objects.filter(project=project).count() == 1
    # nothing of the failed commit is left for the next one to pick up
    assert workspace.main_files(project.workspace) == files_before
    assert not [p.name for p in repo.iterdir() if p.name != ".git"]


def test_a_stale_git_lock_left_by_a_crash_is_cleared(eager, llm, project):
    accepted(project, GOOD, llm)
    lock = workspace.repo_of(project.workspace) / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    old = time.time() - workspace.STALE_LOCK_SECONDS - 60
    os.utime(lock, (old, old))
    llm.reset()
    llm.script("generate", GOOD_V2)
    task = submit_task(project, REQUEST)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED, task.message
    assert not lock.exists() and Deployment.objects.filter(project=project).count() == 2


def test_a_redelivered_deploy_step_deploys_once(eager, llm, project):
    task = accepted(project, GOOD, llm)
    runs = task.sandbox_runs.count()
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    pipeline.deploy(task.pk, 1)
    assert Deployment.objects.filter(project=project).count() == 1 and task.sandbox_runs.count() == runs


def test_the_verdict_tests_run_again_only_when_the_deployed_tree_differs_from_the_tested_one(eager, llm, project):
    """A first deploy puts exactly the tested files live: the verdict run's pass stands for it. A
    later checkpoint that leaves an earlier file in place becomes a different tree: it is tested
    again, against that tree, before it moves."""
    first = accepted(project, MULTI, llm)
    d1 = Deployment.objects.get(checkpoint__task=first)
    assert d1.tested_by.purpose == "verdict" and d1.tested_by.checkpoint_id == d1.checkpoint_id
    assert not first.sandbox_runs.filter(purpose="deploy").exists()
    second = accepted(project, GOOD_V2, llm)  # solution.py only: textutil/ from the first stays in the tree
    d2 = Deployment.objects.get(checkpoint__task=second)
    assert (d2.tested_by.purpose, d2.tested_by.status) == ("deploy", "passed")
    tree = deploy.tree_files(d2)
    assert sorted(tree) == ["solution.py", "textutil/__init__.py", "textutil/slug.py"]
    assert d2.tested_by.inputs_digest == sandbox.inputs_digest(tree, second.verdict_tests)


def test_multi_file_code_deploys_whole_and_the_generators_own_tests_are_dropped(eager, llm, project):
    task = accepted(project, MULTI, llm)
    cp = task.checkpoints.get()
    assert sorted(cp.files) == ["solution.py", "textutil/__init__.py", "textutil/slug.py"]
    assert [t["name"] for t in cp.test_results if "self_certified" in t["name"]] == []
    deployed = project.workspace / "deployed"
    assert (deployed / "textutil" / "slug.py").exists() and not (deployed / "test_mine.py").exists()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("```python\n# file: ../evil.py\nx = 1\n```", "escapes the work dir"),
        ("```python\n# file: helpers.py\nx = 1\n```\n```python\n# file: util.py\ny = 2\n```", "no solution.py"),
        ("```python\n# file: solution.py\ndef f(:\n```", "solution.py is not valid Python"),
        ("```python\n# file: notes.txt\nhello\n```\n```python\n# file: solution.py\nx = 1\n```", "not a Python module"),
    ],
)
def test_bad_generated_files_are_a_clear_generation_error(reply, error):
    assert error in replies.extract_files(reply)[1]


def test_a_rollback_whose_row_cannot_be_written_moves_deployed_back(eager, llm, project, monkeypatch):
    """The ref and the Deployment rows move together: no rollback on disk without its row."""
    from django.db import DatabaseError

    accepted(project, GOOD, llm)
    accepted(project, GOOD_V2, llm)
    d1, d2 = Deployment.objects.filter(project=project).order_by("id")
    before = deployed_state(project)

    def broken_create(**kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Deployment.objects, "create", broken_create)
    with pytest.raises(DatabaseError):
        deploy.rollback(d1)
    assert deployed_state(project) == before == (d2.commit_sha, d2.tree_sha)
    assert Deployment.objects.filter(project=project).count() == 2


def test_a_rollback_a_worker_cannot_do_opens_an_alert(eager, llm, project, client, user):
    """The web only queues a rollback; when the worker cannot move `deployed`, the owner gets an alert."""
    accepted(project, GOOD, llm)
    accepted(project, GOOD_V2, llm)
    d1, d2 = Deployment.objects.filter(project=project).order_by("id")
    Deployment.objects.filter(pk=d1.pk).update(commit_sha="0" * 40)  # a commit the repository lacks
    client.force_login(user)
    url = reverse("admin:agents_deployment_changelist")
    client.post(url, {"action": "roll_back", "_selected_action": [d1.pk]}, follow=True)
    assert deploy.current(project) == d2 and deployed_state(project)[0] == d2.commit_sha
    alert = Alert.objects.get(failure_class="deploy_failed")
    assert "not rolled back to 0000000000" in alert.message

    response = client.post(url, {"action": "roll_back", "_selected_action": [d2.pk]}, follow=True)
    assert "already deployed" in response.content.decode()  # refused at once, nothing queued
