from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIM = 384


class MemoryEntry(models.Model):
    class Kind(models.TextChoices):
        SOLUTION = "solution"  # an accepted request, its code and tests
        LESSON = "lesson"  # a failure class and the fix that worked
        DOCUMENT = "document"  # a chunk of an owner's document

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memories")
    project = models.ForeignKey("agents.Project", null=True, blank=True, on_delete=models.SET_NULL)
    task = models.OneToOneField("agents.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="memory")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    embedding = VectorField(dimensions=EMBEDDING_DIM, null=True, blank=True)  # null until embedded
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.kind} {self.pk}"

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
            )
        ]
