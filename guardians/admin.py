from django.contrib import admin

from guardians.models import GuardianReport


@admin.register(GuardianReport)
class GuardianReportAdmin(admin.ModelAdmin):
    list_display = ["id", "guardian", "severity", "subject", "task", "created"]
    list_filter = ["guardian", "severity"]
    list_select_related = ["task"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(task__project__owner=request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
