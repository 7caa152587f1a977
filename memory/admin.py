"""Memory in the admin: browse, filter and delete entries; search ranked by the hybrid retrieval,
with its scores; upload documents. Staff see and search only their own memories."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.db.models import Case, Count, FloatField, OuterRef, Subquery, Value, When
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from agents.models import Checkpoint, Project
from memory import chunking, retrieval, store
from memory.models import MemoryEntry

SEARCH_K = 20
SEARCH_OWNERS = 20  # a superuser's search without an owner filter covers this many owners


class EmbeddedFilter(admin.SimpleListFilter):
    title = "embedded"
    parameter_name = "embedded"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No, waiting")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(embedding__isnull=self.value() == "no")
        return queryset


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class UploadForm(forms.Form):
    files = MultipleFileField(
        allow_empty_file=True, help_text="Text or source files; each is chunked (with overlap) and embedded."
    )
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False)

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.filter(owner=owner)


@admin.register(MemoryEntry)
class MemoryEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "owner", "project", "source", "short_content", "embedded", "times_reused", "score",
                    "created"]  # fmt: skip
    # a project filter lists only projects of the rows the viewer may see, never other owners' names
    list_filter = ["kind", EmbeddedFilter, ("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["owner", "project"]
    search_fields = ["content"]  # the box; the search itself is the hybrid retrieval below
    search_help_text = "Ranked by meaning and words together (vector + full-text, reciprocal rank fusion)."
    readonly_fields = ["embedding_model", "dimensions", "embed_error", "key", "task", "created"]
    exclude = ["embedding"]
    change_list_template = "admin/memory/memoryentry/change_list.html"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        qs = qs if request.user.is_superuser else qs.filter(owner=request.user)
        # a correlated count, evaluated for the rows of the page only
        answered = Checkpoint.objects.filter(reused=OuterRef("pk")).order_by().values("reused")
        return qs.annotate(_reused=Subquery(answered.annotate(n=Count("pk")).values("n")))

    def get_list_filter(self, request):
        return [*self.list_filter, "owner"] if request.user.is_superuser else self.list_filter

    def get_readonly_fields(self, request, obj=None):
        """Whose memory it is, and what kind, are fixed once written: an edit may change the text only."""
        return [*self.readonly_fields, "owner", "project", "kind"] if obj else self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name == "project":
            kwargs["queryset"] = Project.objects.filter(owner=request.user)
        elif not request.user.is_superuser and db_field.name == "owner":
            kwargs["queryset"] = type(request.user).objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        owners = list(queryset.values_list("owner_id", flat=True).distinct().order_by()[:SEARCH_OWNERS])
        hits, notes = [], set()
        for owner_id in owners:
            result = retrieval.search(owner_id, search_term, k=SEARCH_K)
            hits += result.hits
            if result.degraded:
                notes.add(result.degraded)
        for note in notes:
            messages.warning(request, note)
        hits = sorted(hits, key=lambda h: -h.score)[:SEARCH_K]
        ids = [h.entry.pk for h in hits]
        score = Case(*[When(pk=h.entry.pk, then=Value(h.score)) for h in hits], output_field=FloatField())
        ranked = queryset.filter(pk__in=ids).annotate(_score=score)
        if ORDER_VAR not in request.GET:  # best first, unless a column header was clicked
            ranked = ranked.order_by("-_score", "-pk")
        return ranked, False

    @admin.display(description="score")
    def score(self, obj):
        value = getattr(obj, "_score", None)
        return "" if value is None else f"{value:.4f}"

    @admin.display(description="reused")
    def times_reused(self, obj):
        """Requests this solution answered (agents/reuse.py); "rolled back": never reused again."""
        if obj.metadata.get("rolled_back"):
            return "rolled back"
        return obj._reused or 0 if obj.kind == MemoryEntry.Kind.SOLUTION else ""

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:80]

    @admin.display(boolean=True)
    def embedded(self, obj):
        return obj.embedding is not None

    def has_add_permission(self, request):
        return False  # memories come from tasks, guardians and uploads

    def get_urls(self):
        upload = path("upload/", self.admin_site.admin_view(self.upload_view), name="memory_memoryentry_upload")
        return [upload, *super().get_urls()]

    def upload_view(self, request):
        form = UploadForm(request.POST or None, request.FILES or None, owner=request.user)
        if request.method == "POST" and form.is_valid():
            for upload in form.cleaned_data["files"]:
                try:
                    chunking.check_size(upload.name, upload.size, settings.GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES)
                    entries = store.ingest_document(
                        request.user, upload.name, upload.read(), project=form.cleaned_data["project"]
                    )
                except chunking.DocumentError as exc:
                    messages.error(request, str(exc))
                    continue
                messages.success(request, f"{upload.name}: {len(entries)} chunk(s) stored; embedding follows.")
            return redirect("admin:memory_memoryentry_changelist")
        context = {**self.admin_site.each_context(request), "title": "Upload documents to memory", "form": form,
                   "opts": self.model._meta, "limit": settings.GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES}  # fmt: skip
        return TemplateResponse(request, "admin/memory/upload.html", context)
