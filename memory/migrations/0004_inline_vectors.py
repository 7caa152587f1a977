"""Vectors stored inline and an index of owners' embedded rows, for exact searches at speed.

pgvector stores a vector with STORAGE EXTERNAL: a 384-dimension row outgrows PostgreSQL's 2 kB
TOAST threshold, so the vector went to the TOAST table and an exact search fetched every one of
an owner's vectors from there (68 ms for 15,000 rows; 22 ms inline). PLAIN keeps it in the row
(the content and its tsvector move out instead); VACUUM FULL rewrites the rows already there.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # VACUUM cannot run in a transaction

    dependencies = [("memory", "0003_solution_request_chars")]

    operations = [
        migrations.RemoveIndex(model_name="memoryentry", name="memory_owner_kind"),
        migrations.AddIndex(
            model_name="memoryentry",
            index=models.Index(
                condition=models.Q(embedding__isnull=False),
                fields=["owner", "kind", "project"],
                name="memory_owner_embedded",
            ),
        ),
        migrations.RunSQL(
            "ALTER TABLE memory_memoryentry ALTER COLUMN embedding SET STORAGE PLAIN",
            "ALTER TABLE memory_memoryentry ALTER COLUMN embedding SET STORAGE EXTERNAL",
        ),
        migrations.RunSQL("VACUUM FULL memory_memoryentry", migrations.RunSQL.noop),
    ]
