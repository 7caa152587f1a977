from django.conf import settings
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from agents.charts import bars
from agents.workflows import BROKER_ERRORS
from improvement import tasks
from improvement.models import Arm, Cycle, Trial


class SuperuserOnly(admin.ModelAdmin):
    """Cycles test the global policy on every owner's history: the superuser's business."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ArmInline(admin.TabularInline):
    model = Arm
    fields = readonly_fields = ["label", "policy", "baseline", "proposal"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Cycle)
class CycleAdmin(SuperuserOnly):
    list_display = ["__str__", "status", "baseline", "adopted", "canary", "progress", "started", "finished"]
    list_filter = ["status", "canary"]
    readonly_fields = [
        "status",
        "baseline",
        "adopted",
        "canary",
        "decision",
        "ab_table",
        "ab_plot",
        "started",
        "finished",
    ]
    exclude = ["table", "problems", "loop"]
    inlines = [ArmInline]
    change_list_template = "admin/improvement/cycle/change_list.html"

    @admin.display(description="trials judged")
    def progress(self, obj):
        trials = Trial.objects.filter(arm__cycle=obj)
        done = trials.exclude(passed=None).count() + trials.exclude(error="").count()
        return f"{done}/{trials.count()}"

    @admin.display(description="A/B table")
    def ab_table(self, obj):
        if not obj.table:
            return "not decided yet"
        header = format_html_join(
            "", "<th>{}</th>", ((name,) for name in ("arm", "solved", "Δ vs live (95% CI, paired)", "s / problem",
                                                   "tokens / problem", "errors", "verdict"))
        )  # fmt: skip
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row["arm"],
                    row["solved"],
                    row["judged"],
                    "—" if row["baseline"] else f"{row.get('difference')} ({row.get('ci95')}, {row.get('paired')})",
                    row["seconds"],
                    row["tokens"],
                    row["errors"],
                    row.get("verdict", "") or ("live" if row["baseline"] else "no"),
                )  # fmt: skip
                for row in obj.table
            ),
        )
        return format_html("<table><tr>{}</tr>{}</table>", header, rows)

    @admin.display(description="A/B plot")
    def ab_plot(self, obj):
        """Share solved per arm (the live policy first)."""
        if not obj.table:
            return "not decided yet"
        rows = [
            (row["arm"], row["solved"] / max(1, row["judged"]), f"{row['solved']}/{row['judged']}") for row in obj.table
        ]
        return bars("Share of the problems solved, per arm", rows, top=1.0)

    def get_urls(self):
        run_now = path(
            "run-now/", self.admin_site.admin_view(require_POST(self.run_now)), name="improvement_cycle_run_now"
        )
        return [run_now, *super().get_urls()]

    def run_now(self, request):
        if not request.user.is_superuser:
            messages.error(request, "Only a superuser starts an improvement cycle.")
        elif not settings.GRYPHGEN_CYCLES:
            messages.error(request, "Improvement cycles are off (GRYPHGEN_CYCLES).")
        else:
            try:
                tasks.start_cycle.delay()
            except BROKER_ERRORS as exc:
                messages.error(request, f"The task queue is unreachable ({exc}); try again when it is back.")
            else:
                messages.success(
                    request, "A cycle is starting (or the running one resumes); it waits for owners' tasks."
                )
        return redirect("admin:improvement_cycle_changelist")
