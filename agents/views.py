from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents import deploy, policy, project_page, task_page
from agents.forms import MemoryUploadForm, ProjectForm, ProjectSettingsForm, RetryForm, TaskForm
from agents.models import Deployment, Project, Task
from agents.services import cancel_task, retry_task, review_held, submit_task
from agents.workflows import BROKER_ERRORS
from memory import chunking, retrieval, store
from memory.models import MemoryEntry


@login_required
def home(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.instance.owner = request.user
        try:
            project = form.save()
        except IntegrityError:
            form.add_error("name", "You already have a project with this name.")
        else:
            return redirect(project)
    projects = Project.objects.filter(owner=request.user).annotate(task_count=Count("tasks"))
    return render(request, "agents/home.html", {"projects": projects, "form": form})


def owned_project(request, pk):
    return get_object_or_404(Project, pk=pk, owner=request.user, staging=False)


@login_required
def project_detail(request, pk):
    project = owned_project(request, pk)
    form = TaskForm(request.POST or None, request.FILES or None, initial={"mode": project.default_mode})
    if request.method == "POST" and form.is_valid():
        try:
            data = form.cleaned_data
            task = submit_task(project, data["request"], data["acceptance_tests"], mode=data["mode"] or None)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(task)
    return render(request, "agents/project.html", project_context(request, project, form=form))


def project_context(request, project, **forms):
    live = policy.live(project)
    values = policy.values_of(live)
    query = request.GET.get("q", "").strip()
    hits = retrieval.search(request.user.pk, query, k=10).hits if query else []
    context = {
        "project": project,
        "tasks": project.tasks.select_related("policy")[:50],
        "settings_form": ProjectSettingsForm(
            instance=project, initial={"budget_tokens": values.budget_tokens, "budget_seconds": values.budget_seconds}
        ),
        "upload_form": MemoryUploadForm(),
        "deployments": Deployment.objects.filter(project=project).select_related("checkpoint__task")[:50],
        "current": deploy.current(project),
        "query": query,
        "hits": hits,
        "memories": MemoryEntry.objects.filter(owner=request.user, project=project).count(),
        "charts": project_page.charts(project),
        "policy_values": values,
        "live_policy": live,
    }
    context.update(forms)
    return context


@login_required
@require_POST
def project_settings(request, pk):
    project = owned_project(request, pk)
    form = ProjectSettingsForm(request.POST, instance=project)
    if not form.is_valid():
        return render(request, "agents/project.html", project_context(request, project, settings_form=form), status=400)
    form.save()
    try:
        changed = project_page.save_budgets(project, form.cleaned_data)
    except policy.PolicyError as exc:
        messages.error(request, str(exc))
        return redirect(project)
    messages.success(request, "Settings saved" + ("; the budgets apply to the next task." if changed else "."))
    return redirect(project)


@login_required
@require_POST
def project_rollback(request, pk, deployment_pk):
    project = owned_project(request, pk)
    request_rollback(request, get_object_or_404(Deployment, pk=deployment_pk, project=project))
    return redirect(project)


def request_rollback(request, target) -> None:
    """Queue the rollback to `target` and say what happened (a no-op and a dead queue are refused)."""
    try:
        deploy.request_rollback(target, request.user)
    except deploy.DeployError as exc:
        messages.error(request, f"Not rolled back: {exc}.")
    except BROKER_ERRORS as exc:
        messages.error(request, f"The task queue is unreachable ({exc}); try again when it is back.")
    else:
        messages.success(request, f"Rolling back to {target.commit_sha[:10]}; the project page shows when it is done.")


@login_required
def project_download(request, pk):
    """A zip of the tree deployed now (or of `?deployment=ID` of this project)."""
    project = owned_project(request, pk)
    wanted = request.GET.get("deployment", "")
    if wanted:
        target = get_object_or_404(Deployment, pk=wanted if wanted.isdigit() else 0, project=project)
    else:
        target = deploy.current(project)
    if target is None:
        return HttpResponse("Nothing is deployed in this project yet.", status=404, content_type="text/plain")
    name, data = deploy.tree_zip(target)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_POST
def project_memory_upload(request, pk):
    project = owned_project(request, pk)
    form = MemoryUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "agents/project.html", project_context(request, project, upload_form=form), status=400)
    upload = form.cleaned_data["document"]
    try:
        chunking.check_size(upload.name, upload.size, settings.GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES)
        entries = store.ingest_document(request.user, upload.name, upload.read(), project=project)
    except chunking.DocumentError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{upload.name}: {len(entries)} chunk(s) stored; embedding follows.")
    return redirect(project)


@login_required
@require_POST
def memory_forget(request, pk, entry_pk):
    project = owned_project(request, pk)
    entry = get_object_or_404(MemoryEntry, pk=entry_pk, owner=request.user)
    entry.delete()
    messages.success(request, f"Forgotten: memory #{entry_pk}.")
    return redirect(project)


def owned_task(request, pk):
    return get_object_or_404(Task.objects.select_related("project", "policy"), pk=pk, project__owner=request.user)


@login_required
def task_detail(request, pk):
    task = owned_task(request, pk)
    deployment = Deployment.objects.filter(checkpoint__task=task, kind=Deployment.Kind.DEPLOY).first()
    current = deploy.current(task.project)
    context = {
        "task": task,
        "events": task.events.all(),
        "rounds": task_page.rounds(task),
        "timeline": task_page.timeline(task),
        "code_style": task_page.STYLE,
        "reports": task.reports.filter(checkpoint=None),
        "alerts": task.alerts.filter(resolved__isnull=True),
        "dead_letters": task.dead_letters.filter(requeued__isnull=True),
        "deployment": deployment,
        "deployed_now": deployment is not None and current is not None and current.commit_sha == deployment.commit_sha,
        "retry_form": RetryForm(initial={"request": task.request, "mode": task.mode}),
    }
    return render(request, "agents/task.html", context)


@login_required
@require_POST
def task_cancel(request, pk):
    task = owned_task(request, pk)
    if cancel_task(task, request.user):
        messages.success(request, "Cancelled: no further step runs.")
    else:
        messages.error(request, "This task has already ended.")
    return redirect(task)


@login_required
@require_POST
def task_retry(request, pk):
    task = owned_task(request, pk)
    form = RetryForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(f"{name}: {e}" for name, errors in form.errors.items() for e in errors))
        return redirect(task)
    try:
        again = retry_task(task, request=form.cleaned_data["request"], mode=form.cleaned_data["mode"] or None)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(task)
    messages.success(request, f"Submitted again as task #{again.pk}.")
    return redirect(again)


@login_required
@require_POST
def task_rollback(request, pk):
    """Deploy this task's code again (a rollback to its deployment)."""
    task = owned_task(request, pk)
    target = Deployment.objects.filter(checkpoint__task=task, kind=Deployment.Kind.DEPLOY).first()
    if target is None:
        messages.error(request, "This task's code was never deployed.")
    else:
        request_rollback(request, target)
    return redirect(task)


@login_required
@require_POST
def task_review(request, pk):
    """Deploy or reject held code: only the task's owner."""
    task = owned_task(request, pk)
    accept = request.POST.get("decision") == "deploy"
    if review_held(task, request.user, accept=accept):
        messages.success(request, "Deploying the held code." if accept else "Rejected: nothing was deployed.")
    else:
        messages.error(request, "This task is not held for review.")
    return redirect(task)
