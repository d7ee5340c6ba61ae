"""message_accept, the one submission service every door calls (SPEC §4.1)."""

import datetime
import email.utils

import pytest
from django.utils import timezone

from mailqueue.blocking import mail_service_block
from mailqueue.models import DailyCounter, Message, MessageStatus, RecipientStatus
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from mailqueue.submission import SubmissionError, message_accept
from tests.factories import HostingFactory

pytestmark = pytest.mark.django_db

RAW = (
    b"Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
    b"From: Shop <shop@acme-shop.fr>\r\n"
    b"To: client@example.org\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <order-42@acme-shop.fr>\r\n"
    b"\r\n"
    b"Thank you.\r\n"
)


def accept(hosting, *, raw=RAW, sender="shop@acme-shop.fr", recipients=("client@example.org",)):
    return message_accept(hosting=hosting, sender=sender, recipients=list(recipients), raw=raw)


def refusal(hosting, **kwargs) -> SubmissionError:
    with pytest.raises(SubmissionError) as caught:
        accept(hosting, **kwargs)
    assert not Message.objects.filter(hosting=hosting).exists(), "a refused message must store nothing"
    return caught.value


def test_active_service_queues_the_message_for_delivery():
    hosting = HostingFactory()
    before = timezone.now()

    message = accept(hosting, recipients=["client@example.org", "boss@example.org"])

    message.refresh_from_db()
    assert message.hosting == hosting
    assert message.status == MessageStatus.QUEUED
    assert message.sender == "shop@acme-shop.fr"
    assert [r["address"] for r in message.recipients] == ["client@example.org", "boss@example.org"]
    assert {r["status"] for r in message.recipients} == {RecipientStatus.PENDING}
    assert message.recipient_count == 2
    assert message.subject == "Your order"
    assert message.message_id == "<order-42@acme-shop.fr>"
    assert message.size == len(RAW)
    assert message.held_until is None
    assert message.next_attempt_at >= before


@pytest.mark.parametrize("to_state", ["blocked", "purging"])
def test_blocked_or_purging_service_holds_the_message_for_72_hours(to_state):
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.api("test"))
    if to_state == "purging":
        mail_service_purge_request(hosting=hosting, actor=Actor.api("test"))

    message = accept(hosting)

    message.refresh_from_db()
    assert message.status == MessageStatus.HELD
    assert message.next_attempt_at is None
    assert message.held_until - message.held_at == datetime.timedelta(hours=72)
    assert abs(message.held_at - timezone.now()) < datetime.timedelta(minutes=1)


def test_raw_message_is_stored_byte_for_byte():
    hosting = HostingFactory()
    raw = RAW.replace(b"Thank you.", b"Caf\xc3\xa9 \xff\x00 binary\r\n..dot")

    message = accept(hosting, raw=raw)

    assert bytes(Message.objects.get(pk=message.pk).raw) == raw


def test_message_of_exactly_10_mb_is_accepted_and_one_byte_more_refused_with_552(settings):
    assert settings.MAX_MESSAGE_BYTES == 10 * 1024 * 1024
    hosting = HostingFactory()
    header = b"Date: Tue, 01 Dec 2026 10:00:00 +0100\r\nMessage-ID: <big@example.org>\r\nSubject: big\r\n\r\n"
    lines, rest = divmod(settings.MAX_MESSAGE_BYTES - len(header), 1000)
    exact = header + (b"x" * 998 + b"\r\n") * lines + b"x" * rest  # lines within RFC 5322's 998 octets

    assert accept(hosting, raw=exact).size == settings.MAX_MESSAGE_BYTES
    Message.objects.all().delete()
    error = refusal(hosting, raw=exact + b"x")
    assert error.smtp_code == 552
    assert error.smtp_reply.startswith("552 5.3.4 ")


def test_no_recipient_is_refused_with_501():
    error = refusal(HostingFactory(), recipients=[])
    assert error.smtp_code == 501
    assert error.smtp_reply.startswith("501 5.5.4 ")


@pytest.mark.parametrize("bad", ["not-an-address", "a@b@c.org", "<x@example.org>,y@example.org", "x@exa mple.org"])
def test_bad_recipient_is_refused_with_553(bad):
    error = refusal(HostingFactory(), recipients=["good@example.org", bad])
    assert error.smtp_code == 553
    assert error.enhanced_code == "5.1.3"


def test_bad_sender_is_refused_with_553_5_1_7():
    error = refusal(HostingFactory(), sender="nobody at all")
    assert (error.smtp_code, error.enhanced_code) == (553, "5.1.7")


def test_100_recipients_are_accepted_and_101_refused_with_452():
    hosting = HostingFactory()
    recipients = [f"user{n}@example.org" for n in range(101)]

    assert accept(hosting, recipients=recipients[:100]).recipient_count == 100
    Message.objects.all().delete()
    error = refusal(hosting, recipients=recipients)
    assert error.smtp_code == 452
    assert error.smtp_reply.startswith("452 4.5.3 ")


def test_duplicate_recipients_count_once():
    message = accept(HostingFactory(), recipients=["a@example.org", "A@example.org", "b@example.org"])
    assert [r["address"] for r in message.recipients] == ["a@example.org", "b@example.org"]


@pytest.mark.parametrize(
    ("header", "subject"),
    [
        (b"Subject: =?UTF-8?B?Q29tbWFuZGUgbsKwNDIgZXhww6lkacOpZQ==?=", "Commande n°42 expédiée"),
        (b"Subject: =?iso-8859-1?q?R=E9servation?= confirm=?utf-8?q?=C3=A9e?=", "Réservation confirmée"),
        (b"Subject: Caf\xc3\xa9 direct UTF-8", "Café direct UTF-8"),
        (b"Subject: =?utf-8?q?caf=C3=A9?= et th\xc3\xa9", "café et thé"),
        (b"Subject: broken \xff\xfe bytes", "broken \ufffd\ufffd bytes"),
        (b"Subject: =?utf-8?b?/w==?= bad encoded word", None),
        (b"Subject: folded\r\n  on two lines", "folded  on two lines"),
        (b"X-No-Subject: 1", ""),
    ],
)
def test_subject_is_decoded_for_display(header, subject):
    raw = b"From: a@example.org\r\n" + header + b"\r\n\r\nbody\r\n"

    message = accept(HostingFactory(), raw=raw)

    stored = Message.objects.get(pk=message.pk).subject
    if subject is None:  # undecodable: kept readable, never an error
        assert "bad encoded word" in stored
    else:
        assert stored == subject


def test_long_subject_is_cut_to_255_characters():
    raw = b"Subject: " + b"A" * 600 + b"\r\n " + b"A" * 600 + b"\r\n\r\nbody\r\n"  # folded: lines stay within 998
    assert len(accept(HostingFactory(), raw=raw).subject) == 255


def test_a_missing_date_and_message_id_are_added_on_top_and_the_rest_kept_exactly():
    hosting = HostingFactory()
    raw = b"From: a@example.org\r\nSubject: no id\r\n\r\nbody\r\n"

    first, second = accept(hosting, raw=raw), accept(hosting, raw=raw)

    assert first.message_id.startswith("<") and first.message_id.endswith(">")
    assert "@" in first.message_id
    assert first.message_id != second.message_id
    stored = bytes(Message.objects.get(pk=first.pk).raw)
    date_line, id_line, rest = stored.split(b"\r\n", 2)
    assert email.utils.parsedate_to_datetime(date_line.removeprefix(b"Date: ").decode()) == first.created_at.replace(
        microsecond=0
    )
    # The Message-ID the portal shows is the one delivered.
    assert id_line == b"Message-ID: " + first.message_id.encode()
    assert rest == raw
    assert first.size == len(stored)


def test_a_message_with_its_date_and_message_id_is_stored_untouched():
    message = accept(HostingFactory(), raw=RAW)
    assert bytes(Message.objects.get(pk=message.pk).raw) == RAW


def test_held_counter_counts_messages_held_on_arrival_only():
    active, blocked = HostingFactory(), HostingFactory()
    mail_service_block(hosting=blocked, actor=Actor.api("test"))

    accept(active)
    accept(active)
    accept(blocked)
    accept(blocked)

    today = timezone.localdate()
    # Queued mail leaves the counters alone (they move on delivery): no row lock per submission.
    assert not DailyCounter.objects.filter(hosting=active).exists()
    assert DailyCounter.objects.filter(hosting=blocked, day=today).values_list("held", flat=True).get() == 2


def test_refused_message_counts_nothing():
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.api("test"))
    refusal(hosting, recipients=["nope"])
    assert not DailyCounter.objects.filter(hosting=hosting, held__gt=0).exists()
    assert not Message.objects.filter(hosting=hosting).exists()


def test_raw_must_be_bytes():
    error = refusal(HostingFactory(), raw="text, not bytes")
    assert error.smtp_code == 554
