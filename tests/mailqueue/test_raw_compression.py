"""The raw content of messages is compressed with LZ4 on PostgreSQL (migration 0021)."""

import pytest
from django.db import connection

from mailqueue.models import Message
from tests.conftest import requires_postgres
from tests.factories import MessageFactory

pytestmark = [requires_postgres, pytest.mark.django_db]


def server_has_lz4() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        return bool(cursor.fetchone()[0])


def test_a_large_raw_content_is_stored_lz4_compressed_and_read_back_whole():
    if not server_has_lz4():
        pytest.skip("this PostgreSQL was built without LZ4: the migration leaves pglz")
    raw = b"From: a@site.example\r\n\r\n" + b"Lorem ipsum dolor sit amet. " * 4000
    message = MessageFactory(raw=raw, size=len(raw))

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_column_compression(raw), octet_length(raw) FROM {Message._meta.db_table} WHERE id = %s",
            [message.pk],
        )
        compression, length = cursor.fetchone()

    assert (compression, length) == ("lz4", len(raw))
    assert bytes(Message.objects.get(pk=message.pk).raw) == raw
