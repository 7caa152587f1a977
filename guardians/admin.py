import json

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from guardians import recovery
from guardians.models import Alert, DeadLetter, GuardianReport, Proposal, ScheduledRun


class RecordAdmin(admin.ModelAdmin):
    """Guardians' records: read-only. Staff see rows of their own tasks; system-wide rows
    (meta views, proposals, scheduled runs) are for superusers."""

    owner_path = "task__project__owner"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{self.owner_path: request.user}) if self.owner_path else qs.none()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def pretty(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


@admin.register(GuardianReport)
class GuardianReportAdmin(RecordAdmin):
    list_display = ["id", "guardian", "severity", "failure_class", "subject", "task", "created"]
    list_filter = ["guardian", "severity", "failure_class"]
    list_select_related = ["task"]
    readonly_fields = ["pretty_findings"]
    exclude = ["findings"]

    def has_delete_permission(self, request, obj=None):
        return False  # guardian reports are an audit record

    @admin.display(description="findings")
    def pretty_findings(self, obj):
        return pretty(obj.findings)


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    list_display = ["id", "failure_class", "severity", "short_message", "count", "task", "first_seen", "last_seen",
                    "resolved"]  # fmt: skip
    list_filter = ["failure_class", "severity", ("resolved", admin.EmptyFieldListFilter)]
    list_select_related = ["task"]
    actions = ["resolve"]

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message[:120]

    def has_delete_permission(self, request, obj=None):
        return False  # alerts are an audit record

    def has_resolve_permission(self, request):
        return request.user.has_perm("guardians.change_alert")

    @admin.action(description="Mark resolved", permissions=["resolve"])
    def resolve(self, request, queryset):
        n = queryset.filter(resolved__isnull=True).update(resolved=timezone.now())
        self.message_user(request, f"{n} alert(s) resolved.")


@admin.register(DeadLetter)
class DeadLetterAdmin(RecordAdmin):
    list_display = ["id", "step", "args", "failure_class", "task", "attempts", "created", "requeued"]
    list_filter = ["failure_class", "step", ("requeued", admin.EmptyFieldListFilter)]
    list_select_related = ["task"]
    readonly_fields = ["pretty_history"]
    exclude = ["history"]
    actions = ["rerun"]

    @admin.display(description="attempts")
    def attempts(self, obj):
        return len(obj.history)

    @admin.display(description="history")
    def pretty_history(self, obj):
        return pretty(obj.history)

    def has_rerun_permission(self, request):
        return request.user.has_perm("guardians.change_deadletter")

    @admin.action(description="Re-run the step (and the steps after it)", permissions=["rerun"])
    def rerun(self, request, queryset):
        for dead in queryset:
            try:
                recovery.rerun(dead.pk)
            except recovery.RerunRefused as exc:
                self.message_user(request, f"Not re-run: {exc}.", messages.ERROR)
            else:
                self.message_user(request, f"Re-queued {dead.step} for task #{dead.task_id}.")


@admin.register(Proposal)
class ProposalAdmin(RecordAdmin):
    owner_path = ""
    list_display = ["id", "target", "current", "proposed", "status", "rationale", "created"]
    list_filter = ["status", "target"]
    readonly_fields = ["pretty_evidence"]
    exclude = ["evidence"]

    @admin.display(description="evidence")
    def pretty_evidence(self, obj):
        return pretty(obj.evidence)


@admin.register(ScheduledRun)
class ScheduledRunAdmin(RecordAdmin):
    owner_path = ""
    list_display = ["job", "due", "claimed", "duplicates", "outcome"]
    list_filter = ["job"]
