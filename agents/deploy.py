"""Deploy and rollback: the only ways a project's `deployed` ref moves.

Deploying an accepted checkpoint: its verdict tests pass in the sandbox against the tree it will
become (the tip of `main` plus the checkpoint's files; a passed run of the checkpoint with the
same tree, tests and limits stands, so a first deploy, or one that replaces every file, does not
run them twice), then a commit naming the task and checkpoint, then the atomic move of
`deployed` together with its Deployment row (a row that cannot be written moves it back). A
failure at any step leaves the previous deployment untouched. A rollback moves `deployed` back to
an earlier deployment's commit and is recorded like a deploy, with who asked for it.
"""

import contextlib
import io
import zipfile

from django.db import transaction

from agents import code_gate, sandbox, workspace
from agents.models import Checkpoint, Deployment, SandboxRun
from memory import store


class DeployError(Exception):
    """The deployment did not move; `kind` says why: tests | sandbox | workspace | noop."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def current(project):
    return Deployment.objects.filter(project=project).first()


def tree_files(deployment: Deployment) -> dict:
    """{path: source} of the tree a deployment put live, rebuilt from the database (the web host
    never reads a workspace): `main` only ever moves by deploys, each committing its checkpoint's
    gated files over the one before, and a rollback puts an earlier deploy's commit back."""
    if deployment.kind == Deployment.Kind.ROLLBACK:
        deployment = Deployment.objects.get(
            project=deployment.project_id, kind=Deployment.Kind.DEPLOY, commit_sha=deployment.commit_sha
        )
    files = {}
    deploys = Deployment.objects.filter(
        project=deployment.project_id, kind=Deployment.Kind.DEPLOY, pk__lte=deployment.pk
    )
    for earlier in deploys.select_related("checkpoint").order_by("pk"):
        files.update(code_gate.code_files(earlier.checkpoint.files))
    return files


def tree_zip(deployment: Deployment) -> tuple[str, bytes]:
    """(file name, a zip of the deployed tree)."""
    name = f"project-{deployment.project_id}-{deployment.commit_sha[:10]}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, source in sorted(tree_files(deployment).items()):
            archive.writestr(f"{name}/{path}", source)
    return f"{name}.zip", buffer.getvalue()


def deploy(checkpoint) -> Deployment:
    """Deploy an accepted checkpoint; a second call returns the first deployment."""
    task = checkpoint.task
    project = task.project
    if done := Deployment.objects.filter(checkpoint=checkpoint, kind=Deployment.Kind.DEPLOY).first():
        return done
    with workspace.locked(project.workspace):
        files = {**workspace.main_files(project.workspace), **checkpoint.files}
        digest = sandbox.inputs_digest(files, task.verdict_tests)
        tested = checkpoint.runs.filter(status=SandboxRun.Status.PASSED, inputs_digest=digest).first()
        if tested is None:  # the tree or the tests differ from every passed run: run them against it
            result = sandbox.run_tests(files, task.verdict_tests)
            tested = SandboxRun.record(task, checkpoint, result, purpose="deploy")
            if result.status == "unavailable":
                raise DeployError("sandbox", f"the sandbox could not run the deploy tests: {result.stderr}")
            if result.status != "passed":
                raise DeployError(
                    "tests",
                    f"the verdict tests did not pass against the deployed tree ({result.status} {result.limit})",
                )
        try:
            commit, tree = workspace.commit_checkpoint(project.workspace, checkpoint)
            previous = current(project)
            with moved_with_its_row(project.workspace, commit), transaction.atomic():
                Checkpoint.objects.filter(pk=checkpoint.pk).update(commit_sha=commit)
                return Deployment.objects.create(
                    project=project, checkpoint=checkpoint, commit_sha=commit, tree_sha=tree, previous=previous,
                    tested_by=tested,
                )  # fmt: skip
        except workspace.WorkspaceError as exc:
            raise DeployError("workspace", str(exc)) from exc


@contextlib.contextmanager
def moved_with_its_row(space, commit):
    """Move `deployed` to `commit` for the block that records it; if the block fails (the database
    row was not written), move it back, so the ref and the Deployment rows never disagree."""
    was = workspace.deployed_commit(space)
    workspace.move_deployed(space, commit, was)
    try:
        yield
    except BaseException:
        if was:
            workspace.move_deployed(space, was, commit)
        else:
            workspace.clear_deployed(space, commit)
        raise


def request_rollback(target: Deployment, user=None) -> None:
    """The web's half of a rollback: refuse a no-op at once, queue the move for a worker. The web
    process never touches a workspace (it runs unprivileged, and may not share a disk with them)."""
    from agents import tasks

    now = current(target.project)
    if now is not None and now.commit_sha == target.commit_sha:
        raise DeployError("noop", f"{target.commit_sha[:10]} is already deployed")
    tasks.roll_back.delay(target.pk, user.pk if user else None)


def rollback_by_id(deployment_id: int, user_id: int | None) -> Deployment | None:
    """The worker's half: roll back, or announce why not (the recovery guardian opens an alert)."""
    from django.contrib.auth import get_user_model

    from agents.signals import announce, rollback_refused

    target = Deployment.objects.select_related("project").filter(pk=deployment_id).first()
    if target is None:
        return None
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        return rollback(target, user)
    except DeployError as exc:
        announce(rollback_refused, "rollback", project=target.project, target=target, error=str(exc))
        return None


def rollback(target: Deployment, user=None) -> Deployment:
    """Move `deployed` back to `target`'s commit and record it; the solutions it undoes are never
    reused by memory as they are (see agents/reuse.py)."""
    project = target.project
    with workspace.locked(project.workspace):
        now = current(project)
        if now is not None and now.commit_sha == target.commit_sha:
            raise DeployError("noop", f"{target.commit_sha[:10]} is already deployed")
        try:
            with moved_with_its_row(project.workspace, target.commit_sha), transaction.atomic():
                undone = Deployment.objects.filter(
                    project=project, kind=Deployment.Kind.DEPLOY, pk__gt=target.pk
                ).exclude(checkpoint=target.checkpoint_id)
                store.mark_rolled_back(Checkpoint.objects.filter(deployments__in=undone))
                return Deployment.objects.create(
                    project=project,
                    checkpoint=target.checkpoint,
                    kind=Deployment.Kind.ROLLBACK,
                    commit_sha=target.commit_sha,
                    tree_sha=target.tree_sha,
                    previous=now,
                    created_by=user,
                )
        except workspace.WorkspaceError as exc:
            raise DeployError("workspace", str(exc)) from exc
