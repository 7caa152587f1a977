from django.contrib import admin

from guardians.models import GuardianReport


@admin.register(GuardianReport)
class GuardianReportAdmin(admin.ModelAdmin):
    list_display = ["id", "guardian", "severity", "subject", "task", "created"]
    list_filter = ["guardian", "severity"]
    list_select_related = ["task"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
