from django.contrib import admin, messages
from django.db.models import Count, Sum

from agents import deploy, policy
from agents.models import AgentCall, Checkpoint, Deployment, Policy, Project, SandboxRun, Task
from agents.services import submit_task
from agents.workflows import BROKER_ERRORS


class OwnedAdmin(admin.ModelAdmin):
    """Superusers see everything; other staff see only their own projects' rows."""

    owner_path = "project__owner"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(**{self.owner_path: request.user})


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CheckpointInline(ReadOnlyInline):
    model = Checkpoint
    fields = ["round", "candidate", "chosen", "model", "stage", "tests_passed", "tests_total", "good", "decision", "reason",
              "evidence", "reused", "commit_sha"]  # fmt: skip
    fk_name = "task"


class AgentCallInline(ReadOnlyInline):
    model = AgentCall
    fields = ["role", "purpose", "model", "endpoint", "prompt_tokens", "completion_tokens", "latency_ms", "error"]


class SandboxRunInline(ReadOnlyInline):
    model = SandboxRun
    fields = ["checkpoint", "purpose", "status", "exit_code", "limit", "duration_ms", "cpu_ms", "peak_memory_kb"]


class DeploymentInline(ReadOnlyInline):
    model = Deployment
    fk_name = "project"
    fields = readonly_fields = ["created", "kind", "checkpoint", "commit_sha", "tree_sha", "created_by"]


@admin.register(Project)
class ProjectAdmin(OwnedAdmin):
    owner_path = "owner"
    list_display = ["name", "owner", "default_mode", "hold_below", "task_count", "created"]
    list_select_related = ["owner"]
    search_fields = ["name"]
    inlines = [DeploymentInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(task_count=Count("tasks"))

    @admin.display(ordering="task_count")
    def task_count(self, obj):
        return obj.task_count

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk}

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner" and not request.user.is_superuser:
            kwargs["queryset"] = type(request.user).objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Task)
class TaskAdmin(OwnedAdmin):
    list_display = ["id", "short_request", "project", "mode", "status", "stop_reason", "stage", "tokens", "created",
                    "finished"]  # fmt: skip
    list_filter = ["status", "stop_reason", "mode", "escalated", ("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project"]
    search_fields = ["request"]
    readonly_fields = ["status", "stop_reason", "stage", "candidates", "entry_point", "verdict_source", "verdict_tests",
                       "escalated", "probe_inputs", "reviewed_by", "message", "created", "started", "finished"]  # fmt: skip
    inlines = [CheckpointInline, AgentCallInline, SandboxRunInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs.annotate(tokens_sum=Sum("calls__prompt_tokens") + Sum("calls__completion_tokens"))

    @admin.display(description="request")
    def short_request(self, obj):
        return obj.request[:70]

    @admin.display(ordering="tokens_sum")
    def tokens(self, obj):
        return obj.tokens_sum or 0

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_readonly_fields(self, request, obj=None):
        # a submitted request is a record: only new tasks take input
        inputs = ["project", "request", "acceptance_tests", "mode", "generator_model", "max_rounds", "budget_tokens",
                  "budget_seconds"]  # fmt: skip
        return self.readonly_fields + (inputs if obj else [])

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project" and not request.user.is_superuser:
            kwargs["queryset"] = Project.objects.filter(owner=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        task = submit_task(
            obj.project, obj.request, obj.acceptance_tests, obj.mode, obj.max_rounds,
            budget_tokens=obj.budget_tokens or None, budget_seconds=obj.budget_seconds or None,
            generator_model=obj.generator_model,
        )  # fmt: skip
        obj.pk = task.pk
        messages.info(request, f"Task #{task.pk} queued; watch it at {task.get_absolute_url()}")


class AuditAdmin(OwnedAdmin):
    """Calls, runs and checkpoints are records of what happened: read-only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AgentCall)
class AgentCallAdmin(AuditAdmin):
    owner_path = "task__project__owner"

    list_display = [
        "id",
        "task",
        "role",
        "purpose",
        "endpoint",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "error",
    ]
    list_filter = ["role", "purpose", "endpoint"]
    list_select_related = ["task"]


@admin.register(SandboxRun)
class SandboxRunAdmin(AuditAdmin):
    owner_path = "task__project__owner"

    list_display = ["id", "task", "checkpoint", "purpose", "status", "exit_code", "limit", "duration_ms", "created"]
    list_filter = ["purpose", "status", "limit"]
    list_select_related = ["task", "checkpoint"]


@admin.register(Checkpoint)
class CheckpointAdmin(AuditAdmin):
    owner_path = "task__project__owner"

    list_display = ["id", "task", "round", "stage", "tests_passed", "tests_total", "good", "decision", "reused",
                    "commit_sha"]  # fmt: skip
    list_filter = ["good", "decision", "stage", ("reused", admin.EmptyFieldListFilter)]
    list_select_related = ["task"]


@admin.register(Deployment)
class DeploymentAdmin(AuditAdmin):
    """The history of each project's `deployed` ref; an owner rolls back from here."""

    list_display = ["id", "project", "kind", "checkpoint", "short_commit", "short_tree", "is_current", "created_by",
                    "created"]  # fmt: skip
    list_filter = ["kind", ("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project", "checkpoint", "created_by"]
    actions = ["roll_back"]

    @admin.display(description="commit")
    def short_commit(self, obj):
        return obj.commit_sha[:10]

    @admin.display(description="tree")
    def short_tree(self, obj):
        return obj.tree_sha[:10]

    @admin.display(boolean=True, description="deployed now")
    def is_current(self, obj):
        return deploy.current(obj.project) == obj

    def has_delete_permission(self, request, obj=None):
        return False  # the deployment history is an audit record

    def has_rollback_permission(self, request):
        return request.user.has_perm("agents.change_deployment")

    @admin.action(description="Roll back: deploy this earlier commit again", permissions=["rollback"])
    def roll_back(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one deployment to roll back to.", messages.ERROR)
            return
        target = queryset.get()
        try:
            deploy.request_rollback(target, request.user)
        except deploy.DeployError as exc:
            self.message_user(request, f"Not rolled back: {exc}", messages.ERROR)
            return
        except BROKER_ERRORS:
            self.message_user(request, "Not rolled back: the task queue (Redis) does not answer.", messages.ERROR)
            return
        self.message_user(
            request, f"Rolling {target.project} back to {target.commit_sha[:10]}: a worker moves it; the list shows "
            "the rollback when it is done (an alert if it cannot be)."
        )  # fmt: skip


@admin.register(Policy)
class PolicyAdmin(OwnedAdmin):
    """Versions are never edited: a change is a new version (the improvement cycle writes them);
    "make live" moves a line's live flag, which is also how a version is rolled back."""

    list_display = ["__str__", "project", "version", "live", "changes", "note", "created"]
    list_filter = ["live"]
    readonly_fields = ["project", "version", "parent", "live", "note", "created", "changes", "values"]
    actions = ["make_live"]

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request).select_related("project", "parent")
        if request.user.is_superuser:
            return qs
        return qs.filter(project__owner=request.user)  # the global line is the superuser's

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="changes from its parent")
    def changes(self, obj):
        if obj.parent is None:
            return "first version"
        try:
            found = policy.diff(policy.values_of(obj.parent), policy.values_of(obj))
        except policy.PolicyError as exc:
            return str(exc)
        return "; ".join(f"{path}: {old!r} → {new!r}" for path, old, new in found) or "none"

    @admin.action(description="Make the selected version live (roll back or forward to it)")
    def make_live(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one version.", messages.ERROR)
            return
        chosen = queryset.get()
        try:
            policy.make_live(chosen)
        except policy.PolicyError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{chosen} is live; new tasks of its line run under it.")
