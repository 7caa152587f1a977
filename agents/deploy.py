"""Deploy and rollback: the only ways a project's `deployed` ref moves.

Deploying an accepted checkpoint: its verdict tests pass in the sandbox against the tree it will
become (the tip of `main` plus the checkpoint's files), then a commit naming the task and
checkpoint, then the atomic move of `deployed`. A failure at any step leaves the previous
deployment untouched. A rollback moves `deployed` back to an earlier deployment's commit and is
recorded like a deploy, with who asked for it.
"""

from django.db import transaction

from agents import sandbox, workspace
from agents.models import Checkpoint, Deployment, SandboxRun
from memory import store


class DeployError(Exception):
    """The deployment did not move; `kind` says why: tests | sandbox | workspace | noop."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def current(project):
    return Deployment.objects.filter(project=project).first()


def deploy(checkpoint) -> Deployment:
    """Deploy an accepted checkpoint; a second call returns the first deployment."""
    task = checkpoint.task
    project = task.project
    if done := Deployment.objects.filter(checkpoint=checkpoint, kind=Deployment.Kind.DEPLOY).first():
        return done
    with workspace.locked(project.workspace):
        files = {**workspace.main_files(project.workspace), **checkpoint.files}
        if not checkpoint.runs.filter(purpose="deploy", status=SandboxRun.Status.PASSED).exists():
            result = sandbox.run_tests(files, task.verdict_tests)
            SandboxRun.record(task, checkpoint, result, purpose="deploy")
            if result.status == "unavailable":
                raise DeployError("sandbox", f"the sandbox could not run the deploy tests: {result.stderr}")
            if result.status != "passed":
                raise DeployError(
                    "tests",
                    f"the verdict tests did not pass against the deployed tree ({result.status} {result.limit})",
                )
        try:
            commit = workspace.commit_checkpoint(project.workspace, checkpoint)
            previous = current(project)
            workspace.move_deployed(project.workspace, commit, workspace.deployed_commit(project.workspace))
            tree = workspace.tree_of(project.workspace, commit)
        except workspace.WorkspaceError as exc:
            raise DeployError("workspace", str(exc)) from exc
        with transaction.atomic():
            Checkpoint.objects.filter(pk=checkpoint.pk).update(commit_sha=commit)
            return Deployment.objects.create(
                project=project, checkpoint=checkpoint, commit_sha=commit, tree_sha=tree, previous=previous
            )


def rollback(target: Deployment, user=None) -> Deployment:
    """Move `deployed` back to `target`'s commit and record it; the solutions it undoes are never
    reused by memory as they are (see agents/reuse.py)."""
    project = target.project
    with workspace.locked(project.workspace):
        now = current(project)
        if now is not None and now.commit_sha == target.commit_sha:
            raise DeployError("noop", f"{target.commit_sha[:10]} is already deployed")
        try:
            workspace.move_deployed(project.workspace, target.commit_sha, workspace.deployed_commit(project.workspace))
        except workspace.WorkspaceError as exc:
            raise DeployError("workspace", str(exc)) from exc
        undone = Deployment.objects.filter(project=project, kind=Deployment.Kind.DEPLOY, pk__gt=target.pk).exclude(
            checkpoint=target.checkpoint_id
        )
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
