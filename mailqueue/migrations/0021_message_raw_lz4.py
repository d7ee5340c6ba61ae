"""The raw content of messages compressed with LZ4 on PostgreSQL (SPEC §12).

PostgreSQL compresses a large value (TOAST) with pglz by default; at 16 clients × 100 KB the
server's compression took CPU the SMTP door needed (bench/README.md: 602 → 654–689 msg/s). LZ4 is
several times faster for a slightly larger result. New values only; rows already stored keep
theirs. Nothing on SQLite, nor on a server built without LZ4.
"""

from django.db import migrations


def _lz4_available(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cursor.fetchone()
    return bool(row and row[0])


def raw_compression(method: str):
    def apply(apps, schema_editor):
        if _lz4_available(schema_editor):
            table = apps.get_model("mailqueue", "Message")._meta.db_table
            schema_editor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "raw" SET COMPRESSION {method}')

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("mailqueue", "0020_admin_verbose_names"),
    ]

    operations = [
        migrations.RunPython(raw_compression("lz4"), raw_compression("pglz"), elidable=False),
    ]
