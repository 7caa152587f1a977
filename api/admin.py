from django.contrib import admin
from django.utils import timezone

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Keys are made with `manage.py gryphgen token create` (shown once); here they are listed and revoked."""

    list_display = ["__str__", "owner", "created", "last_used", "revoked"]
    readonly_fields = ["owner", "name", "prefix", "created", "last_used", "revoked"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("owner")
        return qs if request.user.is_superuser else qs.filter(owner=request.user)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked=None).update(revoked=timezone.now())
        self.message_user(request, f"{count} token(s) revoked; programs using them get 401 from now on.")
