"""Solutions record where their code starts (`metadata["request_chars"]`), so prompts keep it whole."""

from django.db import migrations


def record_request_chars(apps, schema_editor):
    MemoryEntry = apps.get_model("memory", "MemoryEntry")
    for entry in MemoryEntry.objects.filter(kind="solution", task__isnull=False).select_related("task").iterator():
        if "request_chars" not in entry.metadata and entry.content.startswith(entry.task.request):
            entry.metadata = {**entry.metadata, "request_chars": len(entry.task.request)}
            entry.save(update_fields=["metadata"])


class Migration(migrations.Migration):
    dependencies = [("memory", "0002_memory_retrieval")]

    operations = [migrations.RunPython(record_request_chars, migrations.RunPython.noop)]
