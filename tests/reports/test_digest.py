"""The daily error digest (SPEC §4.4), sent through a live SMTP server acting as the platform's mailer."""

import datetime
import email
import email.policy
import threading
import zoneinfo

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.db import connections

from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.state import Actor
from reports import tasks
from reports.models import DigestStatus, ErrorDigest
from reports.services import error_digests_retry, error_digests_send
from tests.factories import CustomerFactory, DeliveryErrorFactory, HostingFactory
from tests.support import free_port

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY = datetime.date(2025, 3, 3)


def _at(hour: int, minute: int = 0, second: int = 0, day: datetime.date = DAY) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=PARIS)


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, parsed))
        return "250 OK"


@pytest.fixture
def mailer(settings):
    """A live SMTP server on a free port, configured as the platform's mailer (EMAIL_*)."""
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.controller = controller
    yield inbox
    controller.stop()


def _parts(message) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


@pytest.fixture
def hosting_with_errors():
    """A French customer's hosting with 3 errors on DAY, one the day before and one the day after."""
    customer = CustomerFactory(language="fr", contact_email="contact@acme.example")
    hosting = HostingFactory(customer=customer, service_name="acme-shop.fr")
    DeliveryErrorFactory(
        hosting=hosting, created_at=_at(0, 0, 5), recipient="alice@example.org", subject="Votre commande n°42"
    )
    DeliveryErrorFactory(
        hosting=hosting, created_at=_at(13, 7, 9), recipient="bob@example.org", reply="550 5.1.1 <bob>: unknown"
    )
    DeliveryErrorFactory(hosting=hosting, created_at=_at(23, 59, 59), recipient="carol@example.org", subject="Facture")
    DeliveryErrorFactory(
        hosting=hosting,
        created_at=_at(23, 59, 59, day=DAY - datetime.timedelta(days=1)),
        recipient="yesterday@example.org",
    )
    DeliveryErrorFactory(
        hosting=hosting, created_at=_at(0, 0, 0, day=DAY + datetime.timedelta(days=1)), recipient="tomorrow@example.org"
    )
    return hosting


@pytest.mark.django_db
def test_digest_in_french_to_the_contact_through_the_live_mailer(mailer, hosting_with_errors):
    with time_machine.travel(_at(6, day=DAY + datetime.timedelta(days=1)), tick=True):
        assert tasks.error_digests_send() == {"sent": 1, "failed": 0}  # the previous local day

    [(recipients, message)] = mailer.messages
    assert recipients == ["contact@acme.example"]
    assert message["To"] == "contact@acme.example"
    assert message["Subject"] == "[acme-shop.fr] Rapport d'erreurs du 3 mars 2025"
    text, html = _parts(message)
    assert "Des e-mails envoyés depuis les scripts de votre hébergement acme-shop.fr" in text
    assert "n'ont pas pu être distribués le 3 mars 2025." in text
    assert "3 e-mails en erreur" in text
    assert "Voici les" not in text  # not capped
    # Local (Paris) times, recipients, replies and subjects, oldest first.
    assert text.index("00:00:05  alice@example.org") < text.index("13:07:09  bob@example.org")
    assert text.index("13:07:09  bob@example.org") < text.index("23:59:59  carol@example.org")
    assert "Objet : Votre commande n°42" in text
    assert "Réponse du serveur : 550 5.1.1 <bob>: unknown" in text  # plain text: not escaped
    assert "yesterday@example.org" not in text and "tomorrow@example.org" not in text
    assert "<th>Réponse du serveur</th>" in html
    assert "<td>550 5.1.1 &lt;bob&gt;: unknown</td>" in html  # HTML: escaped
    assert "<td>13:07:09</td><td>bob@example.org</td>" in html
    assert "3 e-mails en erreur" in html
    digest = ErrorDigest.objects.get(hosting=hosting_with_errors, day=DAY)
    assert (digest.status, digest.error_count, digest.recipient) == (DigestStatus.SENT, 3, "contact@acme.example")
    assert digest.sent_at is not None and digest.attempts == 1


@pytest.mark.django_db
def test_digest_says_whether_each_error_is_permanent_and_where_it_came_from(mailer):
    hosting = HostingFactory(customer=CustomerFactory(language="en"), service_name="globex.com")
    DeliveryErrorFactory(hosting=hosting, created_at=_at(9), recipient="relay@example.org", kind="relay")
    DeliveryErrorFactory(
        hosting=hosting,
        created_at=_at(10),
        recipient="full@example.org",
        reply="452 4.2.2 <full@example.org>: Mailbox full",
        kind="dsn",
        permanent=False,
        status="4.2.2",
    )
    DeliveryErrorFactory(hosting=hosting, created_at=_at(11), recipient="listed@example.org", kind="suppressed")

    assert error_digests_send(day=DAY) == {"sent": 1, "failed": 0}

    [(_recipients, message)] = mailer.messages
    text, html = _parts(message)
    relay, bounce, suppressed = (text.index(f"{name}@example.org") for name in ("relay", "full", "listed"))
    assert text.index("Error: permanent, refused by the relay") in range(relay, bounce)
    assert text.index("Error: temporary, bounced later (delivery report)") in range(bounce, suppressed)
    assert text.index("Error: permanent, suppressed address") > suppressed
    assert "<th>Type</th>" in html
    assert "Mailbox full</td><td>temporary, bounced later (delivery report)</td>" in html
    assert "<td>permanent, suppressed address</td>" in html


@pytest.mark.django_db
def test_digest_in_english_to_the_chosen_recipient_capped_with_the_total(mailer, hosting_with_errors, settings):
    settings.DIGEST_MAX_ERRORS = 2
    hosting = hosting_with_errors
    hosting.customer.language = "en"
    hosting.customer.save()
    mail_service_recipient_change(hosting=hosting, actor=Actor.api("test"), email="reports@acme.example")

    assert error_digests_send(day=DAY) == {"sent": 1, "failed": 0}

    [(recipients, message)] = mailer.messages
    assert recipients == ["reports@acme.example"]
    assert message["Subject"] == "[acme-shop.fr] Error report for March 3, 2025"
    text, html = _parts(message)
    assert "Some e-mails sent from the scripts of your hosting acme-shop.fr could not be delivered" in text
    assert "3 e-mails in error" in text
    assert "Here are the first 2 of 3." in text and "Here are the first 2 of 3." in html
    assert "alice@example.org" in text and "bob@example.org" in text
    assert "carol@example.org" not in text and "carol@example.org" not in html
    assert "Subject: Votre commande n°42" in text and "Server reply: 550 5.1.1 <bob>: unknown" in text
    assert "<th>Server reply</th>" in html
    assert "Rapport" not in text
    assert ErrorDigest.objects.get(hosting=hosting, day=DAY).error_count == 3


@pytest.mark.django_db
def test_no_errors_no_digest_and_one_digest_however_many_runs(mailer, hosting_with_errors):
    quiet_day = DAY - datetime.timedelta(days=5)
    assert error_digests_send(day=quiet_day) == {"sent": 0, "failed": 0}
    assert mailer.messages == []
    assert not ErrorDigest.objects.exists()

    error_digests_send(day=DAY)
    assert error_digests_send(day=DAY) == {"sent": 0, "failed": 0}

    assert len(mailer.messages) == 1
    assert ErrorDigest.objects.filter(day=DAY).count() == 1


@pytest.mark.django_db
def test_a_failed_send_is_recorded_and_sent_by_the_next_run(mailer, hosting_with_errors, settings):
    settings.EMAIL_PORT = free_port()  # the mailer is down

    assert error_digests_send(day=DAY) == {"sent": 0, "failed": 1}
    digest = ErrorDigest.objects.get(hosting=hosting_with_errors, day=DAY)
    assert (digest.status, digest.attempts, digest.sent_at) == (DigestStatus.FAILED, 1, None)
    assert "Connection" in digest.last_error or "refused" in digest.last_error.lower()

    settings.EMAIL_PORT = mailer.controller.port  # back up; the next day's run retries it
    assert error_digests_send(day=DAY + datetime.timedelta(days=1)) == {"sent": 2, "failed": 0}
    subjects = sorted(message["Subject"] for _recipients, message in mailer.messages)
    assert subjects == [
        "[acme-shop.fr] Rapport d'erreurs du 3 mars 2025",
        "[acme-shop.fr] Rapport d'erreurs du 4 mars 2025",
    ]
    digest.refresh_from_db()
    assert (digest.status, digest.attempts, digest.last_error) == (DigestStatus.SENT, 2, "")
    assert error_digests_send(day=DAY + datetime.timedelta(days=1)) == {"sent": 0, "failed": 0}
    assert len(mailer.messages) == 2


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_one_digest(mailer, hosting_with_errors, is_postgres):
    results = []
    barrier = threading.Barrier(2)

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(error_digests_send(day=DAY))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(result["sent"] for result in results) == [0, 1]
    assert len(mailer.messages) == 1
    assert ErrorDigest.objects.get(hosting=hosting_with_errors, day=DAY).status == DigestStatus.SENT


@pytest.mark.django_db
def test_a_failed_digest_is_retried_within_the_hour_not_the_next_day(mailer, hosting_with_errors, settings):
    with time_machine.travel(_at(6, day=DAY + datetime.timedelta(days=1)), tick=False) as clock:
        settings.EMAIL_PORT = free_port()  # the mailer is down at 06:00
        assert error_digests_send(day=DAY) == {"sent": 0, "failed": 1}

        settings.EMAIL_PORT = mailer.controller.port
        clock.shift(datetime.timedelta(hours=1))
        assert tasks.error_digests_retry() == {"sent": 1, "failed": 0}

    digest = ErrorDigest.objects.get(hosting=hosting_with_errors, day=DAY)
    assert (digest.status, digest.attempts, digest.lease_until) == (DigestStatus.SENT, 2, None)
    assert len(mailer.messages) == 1
    assert error_digests_retry() == {"sent": 0, "failed": 0}


@pytest.mark.django_db
def test_a_digest_being_sent_is_left_to_its_run_until_the_lease_expires(mailer, hosting_with_errors):
    with time_machine.travel(_at(6, day=DAY + datetime.timedelta(days=1)), tick=False) as clock:
        # A run took the digest and died while sending: its lease still runs.
        ErrorDigest.objects.create(
            hosting=hosting_with_errors,
            day=DAY,
            status=DigestStatus.SENDING,
            lease_until=_at(6, 10, day=DAY + datetime.timedelta(days=1)),
        )
        assert error_digests_send(day=DAY) == {"sent": 0, "failed": 0}
        assert error_digests_retry() == {"sent": 0, "failed": 0}
        assert mailer.messages == []

        clock.shift(datetime.timedelta(minutes=11))  # the lease has expired: the hourly retry sends it
        assert error_digests_retry() == {"sent": 1, "failed": 0}

    assert len(mailer.messages) == 1
    digest = ErrorDigest.objects.get(hosting=hosting_with_errors, day=DAY)
    assert (digest.status, digest.lease_until) == (DigestStatus.SENT, None)
