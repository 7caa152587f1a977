from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIM = 384  # the column's dimension; a model with another one needs a migration


class MemoryEntry(models.Model):
    """One thing GRYPHGEN remembers for an owner; only that owner's prompts and screens ever see it."""

    class Kind(models.TextChoices):
        SOLUTION = "solution"  # an accepted request, its code and tests
        LESSON = "lesson"  # a failure class and the fix that worked
        DOCUMENT = "document"  # a chunk of an owner's document

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memories")
    project = models.ForeignKey("agents.Project", null=True, blank=True, on_delete=models.SET_NULL)
    task = models.OneToOneField("agents.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="memory")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(
        max_length=200, blank=True, help_text="What the entry solves; a task with the same key never retrieves it."
    )
    source = models.CharField(max_length=300, blank=True, help_text="The document a chunk came from.")
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    # null until embedded; stored inline (STORAGE PLAIN, migration 0004): an exact search reads
    # every vector of an owner, and fetching each from TOAST made that 3-4x slower
    embedding = VectorField(dimensions=EMBEDDING_DIM, null=True, blank=True)
    embedding_model = models.CharField(max_length=100, blank=True)
    dimensions = models.PositiveSmallIntegerField(null=True, blank=True)
    embed_error = models.TextField(blank=True, help_text="Why the last embedding attempt failed; retried later.")
    search = models.GeneratedField(
        expression=SearchVector("content", config="english"), output_field=SearchVectorField(), db_persist=True
    )
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.kind} {self.pk}"

    @property
    def embedded(self):
        return self.embedding is not None

    def solution_parts(self):
        """(request, code) of a solution that records where its request ends (store.remember_solution),
        else None."""
        split = self.metadata.get("request_chars") if self.kind == self.Kind.SOLUTION else None
        return (self.content[:split], self.content[split:]) if split else None

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "memory entries"
        indexes = [
            HnswIndex(
                name="memory_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(name="memory_search_gin", fields=["search"]),
            # exact searches and plan counts read an owner's embedded rows (index-only for counts)
            models.Index(
                name="memory_owner_embedded",
                fields=["owner", "kind", "project"],
                condition=models.Q(embedding__isnull=False),
            ),
            models.Index(name="memory_unembedded", fields=["id"], condition=models.Q(embedding__isnull=True)),
        ]
