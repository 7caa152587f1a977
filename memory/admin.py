from django.contrib import admin

from memory.models import MemoryEntry


@admin.register(MemoryEntry)
class MemoryEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "owner", "project", "short_content", "embedded", "created"]
    list_filter = ["kind"]
    list_select_related = ["owner", "project"]
    search_fields = ["content"]
    exclude = ["embedding"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(owner=request.user)

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:80]

    @admin.display(boolean=True)
    def embedded(self, obj):
        return obj.embedding is not None
