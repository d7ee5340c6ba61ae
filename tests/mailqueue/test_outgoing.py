"""What leaves the platform (SPEC §11): a message a script sent without Date or Message-ID
reaches the relay with both, a Received: trace header and a DKIM signature that verifies against
the record the portal shows; spamd keeps spam from the relay and five spam messages in an hour
block the hosting; spamd down defers, never sends unscanned."""

import datetime
import email.utils
import zoneinfo

import dkim
import pytest
from django.core import mail
from django.utils import timezone

from mailqueue import abuse, dispatch, tasks
from mailqueue.delivery import delivery_run_batch
from mailqueue.dkim_keys import dkim_key_create, dkim_key_rotate, dkim_keys_published, dns_name, dns_value
from mailqueue.models import DeliveryError, ErrorKind, MailService, Message, MessageStatus, State
from mailqueue.outgoing import received_header
from mailqueue.provisioning import hosting_provision
from mailqueue.submission import message_accept
from tests.factories import CustomerFactory, HostingFactory
from tests.mailqueue.test_delivery import LiveRelay
from tests.spamd import fake_spamd
from tests.support import as_stored

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def relay(settings):
    with LiveRelay() as live:
        settings.SMTP_RELAY_URL = live.url
        yield live


def dns_of(hosting):
    """A DNS lookup fed with the records the SMTP page shows (no real DNS)."""
    records = {dns_name(key, hosting) + ".": dns_value(key).encode() for key in dkim_keys_published(hosting=hosting)}

    def lookup(name, timeout=5):
        return records.get(name.decode() if isinstance(name, bytes) else name)

    return lookup


def _php_mail(hosting, *, sender=None, body="Merci pour votre commande."):
    """What PHP's mail() hands to sendmail: no Date, no Message-ID."""
    sender = sender or f"boutique@{hosting.service_name}"
    raw = f"To: client@example.org\r\nSubject: Commande 42\r\nFrom: {sender}\r\n\r\n{body}\r\n".encode()
    return message_accept(
        hosting=hosting, sender=sender, recipients=["client@example.org"], raw=raw, client_address="192.0.2.7"
    )


@pytest.mark.django_db
def test_a_php_message_leaves_with_date_message_id_trace_header_and_a_verifying_signature(relay):
    hosting, _password = hosting_provision(service_name="boutique-exemple.fr", customer=CustomerFactory())
    message = _php_mail(hosting)

    assert delivery_run_batch().sent == 1

    [received] = relay.received
    delivered = received.content
    headers = delivered.split(b"\r\n\r\n", 1)[0].decode()
    assert headers.startswith("Received: from [192.0.2.7] (authenticated as boutique-exemple.fr)")
    assert f" id {message.pk};" in headers and "portal SMTP door" in headers
    unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ")
    assert "\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=boutique-exemple.fr;" in unfolded
    assert "\r\nDate: " in headers
    assert f"\r\nMessage-ID: {message.message_id}\r\n" in headers + "\r\n"  # the one the portal shows
    assert dkim.verify(delivered, dnsfunc=dns_of(hosting))
    assert not dkim.verify(delivered.replace(b"Commande 42", b"Commande 43"), dnsfunc=dns_of(hosting))


@pytest.mark.django_db
def test_a_subdomain_is_signed_and_another_domain_is_not(relay, settings):
    settings.SENDER_POLICY = "any"
    hosting = HostingFactory(service_name="acme-shop.fr")
    dkim_key_create(hosting=hosting)
    _php_mail(hosting, sender="news@mail.acme-shop.fr")
    _php_mail(hosting, sender="someone@gmail.example")
    while delivery_run_batch().claimed:
        pass

    signed, unsigned = relay.received
    assert dkim.verify(signed.content, dnsfunc=dns_of(hosting))
    assert b"DKIM-Signature" not in unsigned.content


@pytest.mark.django_db
def test_after_a_rotation_the_new_key_signs_and_the_old_record_stays_published(relay, settings):
    hosting = HostingFactory(service_name="acme-shop.fr")
    old = dkim_key_create(hosting=hosting)
    _php_mail(hosting)
    delivery_run_batch()
    new = dkim_key_rotate(hosting=hosting)
    _php_mail(hosting)
    delivery_run_batch()

    first, second = relay.received
    assert f"s={old.selector};".encode() in first.content.replace(b"\r\n ", b" ")
    assert f"s={new.selector};".encode() in second.content.replace(b"\r\n ", b" ")
    # Both verify: the old record stays published DKIM_ROTATION_DAYS.
    assert dkim.verify(first.content, dnsfunc=dns_of(hosting)) and dkim.verify(second.content, dnsfunc=dns_of(hosting))
    later = timezone.now() + datetime.timedelta(days=settings.DKIM_ROTATION_DAYS + 1)
    assert [key.selector for key in dkim_keys_published(hosting=hosting, now=later)] == [new.selector]


@pytest.mark.django_db
def test_a_hosting_without_a_key_sends_unsigned_with_its_trace_header(relay):
    hosting = HostingFactory()
    _php_mail(hosting)
    delivery_run_batch()
    [received] = relay.received
    assert received.content.startswith(b"Received: from [192.0.2.7]")
    assert b"DKIM-Signature" not in received.content
    assert as_stored(received.content).startswith(b"Date: ")  # the stored bytes, the door's Date on top


@pytest.mark.django_db
def test_spam_never_reaches_the_relay_and_five_in_an_hour_block_the_hosting(
    relay, spamd, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(
        dispatch, "task_send", lambda name, *args, **kwargs: getattr(tasks, name.rsplit(".")[-1])(*args)
    )
    settings.SPAMD_URL = spamd.url
    hosting = HostingFactory(customer=CustomerFactory(language="en"))
    MailService.objects.filter(hosting=hosting).update(state_changed_at=timezone.now() - datetime.timedelta(days=1))
    clean = _php_mail(hosting)
    assert delivery_run_batch().sent == 1
    clean.refresh_from_db()
    assert clean.spam_score is not None and clean.spam_score < settings.SPAM_SCORE_THRESHOLD

    for _ in range(settings.SPAM_BLOCK_COUNT):
        _php_mail(hosting, body=GTUBE)
    while delivery_run_batch().claimed:
        pass

    assert len(relay.received) == 1  # only the clean one
    spam = Message.objects.filter(hosting=hosting, status=MessageStatus.FAILED)
    assert spam.count() == settings.SPAM_BLOCK_COUNT
    first = spam.first()
    assert first.spam_score >= settings.SPAM_SCORE_THRESHOLD and "GTUBE" in first.spam_rules
    error = DeliveryError.objects.filter(message_id=first.pk).get()
    assert error.kind == ErrorKind.SPAM and error.reply.startswith("5.7.1 considered as spam (score 9")
    assert "GTUBE" not in error.reply  # the customer sees the score, not the rules

    with django_capture_on_commit_callbacks(execute=True):
        assert abuse.abuse_check() == [(hosting.pk, "spam")]
    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason) == (State.BLOCKED, "spam")
    assert any("Abuse" in notice.subject for notice in mail.outbox)


@pytest.mark.django_db
def test_spamd_down_or_silent_defers_and_never_sends_unscanned(relay, settings):
    hosting = HostingFactory()
    settings.SPAMD_TIMEOUT_SECONDS = 1
    with fake_spamd() as port:  # accepts, never answers
        settings.SPAMD_URL = f"spamd://127.0.0.1:{port}"
        message = _php_mail(hosting)
        result = delivery_run_batch()
    assert (result.deferred, result.sent) == (1, 0)
    assert relay.received == []
    message.refresh_from_db()
    assert message.status == MessageStatus.DEFERRED and message.raw is not None
    assert "spam scanner unavailable" in message.last_reply


@pytest.mark.django_db
def test_without_spamd_url_nothing_is_scanned(relay, settings):
    settings.SPAMD_URL = ""
    hosting = HostingFactory()
    _php_mail(hosting, body=GTUBE)
    assert delivery_run_batch().sent == 1
    assert Message.objects.get().spam_score is None


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "America/St_Johns"])
def test_the_trace_headers_stamp_is_the_submission_second_in_the_zone(zone):
    tz = zoneinfo.ZoneInfo(zone)
    for created_at in [
        datetime.datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=datetime.UTC),  # Paris' clocks go forward
        datetime.datetime(2026, 3, 29, 1, 0, 0, 1, tzinfo=datetime.UTC),
        datetime.datetime(2026, 12, 3, 14, 5, 6, 500_000, tzinfo=datetime.UTC),
    ]:
        message = Message(pk=7, created_at=created_at, door="smtp", client_address="192.0.2.7")
        header = received_header(message, "example.org", zone=tz).decode()
        assert header.endswith(f";\r\n\t{email.utils.format_datetime(created_at.astimezone(tz))}\r\n"), header
