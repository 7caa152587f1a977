from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents.forms import ProjectForm, TaskForm
from agents.models import Project, Task
from agents.services import review_held, submit_task


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


@login_required
def project_detail(request, pk):
    project = get_object_or_404(Project, pk=pk, owner=request.user)
    form = TaskForm(request.POST or None, request.FILES or None, initial={"mode": project.default_mode})
    if request.method == "POST" and form.is_valid():
        try:
            data = form.cleaned_data
            task = submit_task(project, data["request"], data["acceptance_tests"], mode=data["mode"] or None)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(task)
    tasks = project.tasks.all()[:50]
    return render(request, "agents/project.html", {"project": project, "form": form, "tasks": tasks})


@login_required
def task_detail(request, pk):
    task = get_object_or_404(Task.objects.select_related("project"), pk=pk, project__owner=request.user)
    context = {
        "task": task,
        "events": task.events.all(),
        "checkpoints": task.checkpoints.all(),
        "reports": task.reports.all(),
        "alerts": task.alerts.filter(resolved__isnull=True),
        "dead_letters": task.dead_letters.filter(requeued__isnull=True),
    }
    return render(request, "agents/task.html", context)


@login_required
@require_POST
def task_review(request, pk):
    """Deploy or reject held code: only the task's owner."""
    task = get_object_or_404(Task.objects.select_related("project"), pk=pk, project__owner=request.user)
    accept = request.POST.get("decision") == "deploy"
    if review_held(task, request.user, accept=accept):
        messages.success(request, "Deploying the held code." if accept else "Rejected: nothing was deployed.")
    else:
        messages.error(request, "This task is not held for review.")
    return redirect(task)
