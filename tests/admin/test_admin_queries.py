"""The admin's pages cost a fixed number of queries, whatever the number of rows (SPEC §6)."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hosting.models import Hosting
from mailqueue.models import DailyCounter, Event, MailService, Message
from tests.admin.conftest import HOSTINGS_URL
from tests.admin.test_admin_roles import cells
from tests.factories import CustomerFactory, EventFactory, HostingFactory, MessageFactory

pytestmark = pytest.mark.django_db

MESSAGES_URL = "/admin/mailqueue/message/"
MAX_QUERIES = 12  # session, user, permissions, count, rows: a handful, never one per row


def queries_of(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def add_hostings(count: int, *, start: int) -> list[Hosting]:
    """`count` hostings spread over several customers; one in ten has no mail service row yet."""
    customers = CustomerFactory.create_batch(max(1, count // 10))
    hostings = Hosting.objects.bulk_create(
        Hosting(service_name=f"bulk-{start + index}.example", customer=customers[index % len(customers)])
        for index in range(count)
    )
    MailService.objects.bulk_create(
        MailService(hosting=hosting, report_recipient=f"r{hosting.pk}@example.org")
        for index, hosting in enumerate(hostings)
        if index % 10
    )
    return hostings


def add_messages(count: int, hostings) -> None:
    Message.objects.bulk_create(
        MessageFactory.build(hosting=hostings[index % len(hostings)], subject=f"m{index}") for index in range(count)
    )


def test_hosting_list_queries_do_not_grow_with_rows(superuser_client):
    add_hostings(5, start=0)
    superuser_client.get(HOSTINGS_URL)  # first request warms per-process caches (content types)
    few = queries_of(superuser_client, HOSTINGS_URL)

    add_hostings(295, start=5)
    many = queries_of(superuser_client, HOSTINGS_URL)

    assert len(cells(superuser_client.get(HOSTINGS_URL), "service_name")) == 100  # one full page
    assert many == few
    assert many <= MAX_QUERIES


def test_message_list_queries_do_not_grow_with_rows(superuser_client):
    add_messages(5, add_hostings(5, start=0))
    superuser_client.get(MESSAGES_URL)
    few = queries_of(superuser_client, MESSAGES_URL)

    add_messages(300, add_hostings(60, start=5))
    many = queries_of(superuser_client, MESSAGES_URL)

    assert len(cells(superuser_client.get(MESSAGES_URL), "subject")) == 100
    assert many == few
    assert many <= MAX_QUERIES


def test_message_pages_never_read_the_content(superuser_client):
    message = MessageFactory(raw=b"Subject: x\r\n\r\n" + b"x" * 100_000)

    for url in (MESSAGES_URL, f"{MESSAGES_URL}{message.pk}/change/"):
        with CaptureQueriesContext(connection) as captured:
            assert superuser_client.get(url).status_code == 200
        message_queries = [query["sql"] for query in captured if "mailqueue_message" in query["sql"]]
        assert message_queries
        assert not [sql for sql in message_queries if '"raw"' in sql]


def test_hosting_page_queries_do_not_grow_with_its_messages_and_events(superuser_client):
    hosting = HostingFactory()
    MessageFactory(hosting=hosting)
    EventFactory(hosting=hosting)
    DailyCounter.objects.create(hosting=hosting, day=timezone.localdate(), sent=3)
    url = f"{HOSTINGS_URL}{hosting.pk}/change/"
    superuser_client.get(url)
    few = queries_of(superuser_client, url)

    add_messages(300, [hosting])
    Event.objects.bulk_create(EventFactory.build(hosting=hosting, actor_label=f"e{index}") for index in range(60))
    DailyCounter.objects.bulk_create(
        DailyCounter(hosting=hosting, day=timezone.localdate() - datetime.timedelta(days=days), sent=1)
        for days in range(1, 60)
    )
    many = queries_of(superuser_client, url)

    assert many == few
    assert many <= MAX_QUERIES + 5  # plus the page's own figures and the inline
