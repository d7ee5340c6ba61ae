"""Every bounce counted (SPEC §10.1, §10.2), from outside with real parts: a live relay that
accepts with 250 and records the envelope sender, bounce reports written as the servers write
them (tests/fixtures/bounces/), sent to the bounce door over SMTP or piped to receive_bounce."""

import datetime
import smtplib
import subprocess
import sys

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.utils import timezone

from mailqueue import abuse, dispatch, tasks
from mailqueue.bounces import bounce_receive
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import (
    BlockReason,
    BounceProblem,
    Complaint,
    DeliveryError,
    ErrorKind,
    MailService,
    Message,
    MessageStatus,
    RecipientStatus,
    State,
    Suppression,
    UnattributedBounce,
)
from mailqueue.return_path import return_path_parse
from mailqueue.selectors import delivery_errors_recent
from mailqueue.submission import message_accept
from reports.services import error_digests_send
from tests.bounce_samples import bounce_sample
from tests.factories import CustomerFactory, HostingFactory
from tests.mailqueue.test_delivery import LiveRelay, counters
from tests.support import BounceDoor, return_path_of, shared_database_url

DEAD = "dead@example.org"


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def relay(settings, request):
    """The relay, offering PIPELINING or not: each recipient's return path either way."""
    with LiveRelay(pipelining=request.param) as live:
        settings.SMTP_RELAY_URL = live.url
        yield live


def _accept(hosting, *recipients: str, subject: str = "Votre commande") -> Message:
    raw = (
        f"From: shop@{hosting.service_name}\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n\r\nBonjour\r\n"
    ).encode()
    return message_accept(hosting=hosting, sender=f"shop@{hosting.service_name}", recipients=list(recipients), raw=raw)


def _delivered(hosting, relay, *recipients: str) -> Message:
    """A message the relay accepted with 250 for every recipient."""
    message = _accept(hosting, *recipients)
    assert delivery_run_batch().sent == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    return message


def _dsn_to_door(door: BounceDoor, return_path: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP(door.hostname, door.port, timeout=10) as client:
        client.ehlo("mx.recipient.example")
        client.mail("<>")  # bounces have the null sender
        client.rcpt(return_path)
        return client.data(raw)


@pytest.mark.django_db(transaction=True)
def test_a_message_accepted_by_the_relay_then_bounced_is_an_error_a_suppression_and_in_the_digest(relay):
    customer = CustomerFactory(language="en")
    hosting = HostingFactory(customer=customer)
    message = _delivered(hosting, relay, DEAD)
    [received] = relay.received
    # The relay saw the message's own return path; the From: header is the script's, untouched.
    assert received.mail_from == return_path_of(message)
    assert return_path_parse(received.mail_from).message_pk == message.pk
    assert f"From: shop@{hosting.service_name}".encode() in received.content

    with BounceDoor() as door:
        code, reply = _dsn_to_door(
            door,
            received.mail_from,
            bounce_sample(
                "postfix-hard", return_path=received.mail_from, recipient=DEAD, message_id=f"<{message.message_id}>"
            ),
        )
    assert (code, reply) == (250, b"2.0.0 Ok: error")

    [error] = DeliveryError.objects.filter(hosting=hosting)
    assert (error.kind, error.permanent, error.status, error.recipient) == (ErrorKind.DSN, True, "5.1.1", DEAD)
    assert "User unknown" in error.reply
    assert list(delivery_errors_recent(hosting=hosting)) == [error]
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.recipients[0]["status"] == RecipientStatus.FAILED
    assert message.recipients[0]["bounce"]["status"] == "5.1.1"
    assert (counters(hosting).sent, counters(hosting).errors) == (1, 1)
    [listed] = Suppression.objects.filter(hosting=hosting)
    assert listed.address == DEAD
    assert listed.expires_at - listed.created_at == datetime.timedelta(days=settings.SUPPRESSION_DAYS)

    # The next day's digest lists it with the recipient's server's words.
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1)):
        error_digests_send()
    [digest] = mail.outbox
    assert DEAD in digest.body and "User unknown" in digest.body

    # The next message to that address is accepted, and never reaches the relay.
    connections_before = relay.handler.connections
    again = _accept(hosting, DEAD, "alive@example.org")
    result = delivery_run_batch()
    assert result.sent == 1
    again.refresh_from_db()
    by_address = {entry["address"]: entry for entry in again.recipients}
    assert by_address[DEAD]["status"] == RecipientStatus.FAILED
    assert by_address[DEAD]["reply"].startswith("recipient suppressed after a permanent error on")
    assert [item.rcpt_tos for item in relay.received] == [[DEAD], ["alive@example.org"]]
    assert relay.handler.connections == connections_before + 1
    skipped = DeliveryError.objects.get(message_id=again.pk)
    assert (skipped.kind, skipped.recipient) == (ErrorKind.SUPPRESSED, DEAD)


@pytest.mark.django_db
def test_a_message_to_suppressed_addresses_only_never_contacts_the_relay(relay):
    hosting = HostingFactory()
    Suppression.objects.create(hosting=hosting, address=DEAD, expires_at=timezone.now() + datetime.timedelta(days=1))
    message = _accept(hosting, "Dead@Example.org")  # the list ignores case

    result = delivery_run_batch()

    assert (result.claimed, result.failed, result.connections) == (1, 1, 0)
    assert relay.handler.connections == 0 and relay.received == []
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    # Counted in the error list, not in the hour's bounce ratio.
    assert counters(hosting).errors == 1
    assert DeliveryError.objects.get(message_id=message.pk).kind == ErrorKind.SUPPRESSED


@pytest.mark.django_db
def test_an_expired_suppression_no_longer_holds_mail_back(relay):
    hosting = HostingFactory()
    Suppression.objects.create(
        hosting=hosting,
        address=DEAD,
        created_at=timezone.now() - datetime.timedelta(days=91),
        expires_at=timezone.now() - datetime.timedelta(days=1),
    )
    _accept(hosting, DEAD)
    assert delivery_run_batch().sent == 1
    assert [item.rcpt_tos for item in relay.received] == [[DEAD]]


@pytest.mark.django_db
def test_the_same_report_twice_counts_once(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, DEAD)
    raw = bounce_sample("gmail-hard", return_path=return_path_of(message), recipient=DEAD)

    first = bounce_receive(raw=raw, envelope_recipients=[return_path_of(message)])
    second = bounce_receive(raw=raw, envelope_recipients=[return_path_of(message)])

    assert (first.result, second.result) == ("error", "duplicate")
    assert DeliveryError.objects.filter(hosting=hosting).count() == 1
    assert counters(hosting).errors == 1


@pytest.mark.django_db
def test_each_recipient_has_its_own_return_path_and_only_the_bounced_one_fails(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, "alive@example.org", DEAD)
    assert [item.mail_from for item in relay.received] == [return_path_of(message, 0), return_path_of(message, 1)]

    outcome = bounce_receive(
        raw=bounce_sample("microsoft-hard", return_path=return_path_of(message, 1), recipient=DEAD),
        envelope_recipients=[return_path_of(message, 1)],
    )

    assert outcome.result == "error"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT  # one recipient got it
    assert [entry["status"] for entry in message.recipients] == [RecipientStatus.SENT, RecipientStatus.FAILED]
    error = DeliveryError.objects.get(hosting=hosting)
    assert (error.recipient, error.status) == (DEAD, "5.1.10")


@pytest.mark.django_db
def test_a_delayed_report_is_noted_and_is_no_error(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, DEAD)

    outcome = bounce_receive(
        raw=bounce_sample("postfix-delayed", return_path=return_path_of(message), recipient=DEAD),
        envelope_recipients=[return_path_of(message)],
    )

    assert outcome.result == "delayed"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.recipients[0]["status"] == RecipientStatus.SENT
    assert message.recipients[0]["delayed"]["status"].startswith("4.")
    assert not DeliveryError.objects.exists() and not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_soft_failure_in_a_report_is_an_error_without_suppression(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, DEAD)

    bounce_receive(
        raw=bounce_sample("postfix-soft-failed", return_path=return_path_of(message), recipient=DEAD),
        envelope_recipients=[return_path_of(message)],
    )

    error = DeliveryError.objects.get(hosting=hosting)
    assert (error.kind, error.permanent) == (ErrorKind.DSN, False)
    assert error.status.startswith("4.")
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_nonstandard_bounce_is_read_by_the_detectors(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, DEAD)

    outcome = bounce_receive(
        raw=bounce_sample("exim-hard", return_path=return_path_of(message), recipient=DEAD),
        envelope_recipients=[return_path_of(message)],
    )

    assert outcome.result == "error"
    error = DeliveryError.objects.get(hosting=hosting)
    assert (error.kind, error.permanent, error.recipient) == (ErrorKind.DSN, True, DEAD)
    assert Suppression.objects.filter(hosting=hosting, address=DEAD).exists()


@pytest.mark.django_db
def test_forged_and_unknown_tokens_are_kept_for_operators_and_count_against_nobody(relay):
    victim = HostingFactory()
    message = _delivered(victim, relay, DEAD)
    genuine = return_path_of(message)
    local, domain = genuine.split("@")
    forged = [
        local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain,  # a damaged MAC
        genuine.replace(f"+{victim.pk}-", f"+{victim.pk + 1}-"),  # another hosting's id, same MAC
        f"{settings.BOUNCE_LOCAL_PART}+1-2-3@{settings.BOUNCE_DOMAIN}",  # no MAC at all
    ]
    for address in forged:
        raw = bounce_sample("postfix-hard", return_path=address, recipient=DEAD).replace(genuine.encode(), b"")
        outcome = bounce_receive(raw=raw, envelope_recipients=[address])
        assert (outcome.result, outcome.problem) == ("unattributed", BounceProblem.FORGED)

    message.delete()  # the retention took it: a genuine token, but nothing left to attribute to
    outcome = bounce_receive(
        raw=bounce_sample("postfix-hard", return_path=genuine, recipient=DEAD), envelope_recipients=[genuine]
    )
    assert outcome.problem == BounceProblem.UNKNOWN_MESSAGE

    kept = UnattributedBounce.objects.order_by("id")
    assert [row.problem for row in kept] == [BounceProblem.FORGED] * 3 + [BounceProblem.UNKNOWN_MESSAGE]
    assert all(bytes(row.raw).startswith(b"Return-Path") or len(row.raw) == row.size for row in kept)
    assert not DeliveryError.objects.exists() and not Suppression.objects.exists()
    assert counters(victim).errors == 0


@pytest.mark.django_db
def test_an_auto_reply_is_not_a_bounce(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, DEAD)

    outcome = bounce_receive(
        raw=bounce_sample("auto-reply", return_path=return_path_of(message), recipient=DEAD),
        envelope_recipients=[return_path_of(message)],
    )

    assert (outcome.result, outcome.problem) == ("unattributed", BounceProblem.UNRECOGNISED)
    assert UnattributedBounce.objects.get().problem == BounceProblem.UNRECOGNISED
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and not DeliveryError.objects.exists()


@pytest.mark.django_db
def test_complaints_are_counted_once_and_block_for_spam_at_the_threshold(
    relay, settings, django_capture_on_commit_callbacks, monkeypatch
):
    # The notice task runs in-process when the block commits (no worker in this test).
    monkeypatch.setattr(
        dispatch, "task_send", lambda name, *args, **kwargs: getattr(tasks, name.rsplit(".")[-1])(*args)
    )
    hosting = HostingFactory()
    MailService.objects.filter(hosting=hosting).update(state_changed_at=timezone.now() - datetime.timedelta(days=1))
    for number in range(settings.SPAM_BLOCK_COUNT):
        recipient = f"reader{number}@example.org"
        message = _delivered(hosting, relay, recipient)
        # Sent to the feedback-loop address: the token is found in the quoted original's Return-Path.
        raw = bounce_sample("complaint-arf", return_path=return_path_of(message), recipient=recipient)
        assert bounce_receive(raw=raw, envelope_recipients=[f"fbl@{settings.BOUNCE_DOMAIN}"]).result == "complaint"
        if number == 0:
            assert bounce_receive(raw=raw, envelope_recipients=[f"fbl@{settings.BOUNCE_DOMAIN}"]).result == "duplicate"
            with django_capture_on_commit_callbacks(execute=True):
                assert abuse.abuse_check() == []
    complaint = Complaint.objects.filter(hosting=hosting).first()
    assert complaint.feedback_type == "abuse"
    assert Complaint.objects.filter(hosting=hosting).count() == settings.SPAM_BLOCK_COUNT

    with django_capture_on_commit_callbacks(execute=True):
        assert abuse.abuse_check() == [(hosting.pk, "spam")]

    service = MailService.objects.get(hosting=hosting)
    assert (service.state, service.block_reason) == (State.BLOCKED, BlockReason.SPAM)
    assert [notice.subject for notice in mail.outbox] and hosting.service_name in mail.outbox[0].subject


@pytest.mark.django_db
def test_the_hourly_bounce_block_is_triggered_by_reports_alone(relay, settings):
    hosting = HostingFactory()
    MailService.objects.filter(hosting=hosting).update(state_changed_at=timezone.now() - datetime.timedelta(days=1))
    messages = [_accept(hosting, f"user{number}@example.org") for number in range(settings.ABUSE_BOUNCE_MIN_MESSAGES)]
    while delivery_run_batch().claimed:
        pass
    assert Message.objects.filter(hosting=hosting, status=MessageStatus.SENT).count() == len(messages)
    assert abuse.abuse_check() == []  # the relay took everything: no error seen yet

    for message in messages[: len(messages) // 2 + 1]:
        address = message.recipients[0]["address"]
        raw = bounce_sample("postfix-hard", return_path=return_path_of(message), recipient=address)
        assert bounce_receive(raw=raw, envelope_recipients=[return_path_of(message)]).result == "error"

    assert abuse.abuse_check() == [(hosting.pk, "bounce")]
    assert MailService.objects.get(hosting=hosting).block_reason == BlockReason.BOUNCE


@pytest.mark.django_db
def test_relay_refusals_of_a_bad_mailbox_and_failures_after_the_retry_limit_suppress(relay, settings):
    hosting = HostingFactory()
    relay.handler.rcpt_replies = {DEAD: ["550 5.1.1 no such user"], "full@example.org": ["552 5.2.2 mailbox full"]}
    _accept(hosting, DEAD, "full@example.org")
    delivery_run_batch()
    assert list(Suppression.objects.values_list("address", flat=True)) == [DEAD]  # a full mailbox is no reason

    settings.RETRY_MAX_AGE_SECONDS = 0  # the next temporary failure is the last one
    relay.handler.rcpt_replies = {"slow@example.org": ["451 4.4.1 try later"]}
    _accept(hosting, "slow@example.org")
    delivery_run_batch()
    assert set(Suppression.objects.values_list("address", flat=True)) == {DEAD, "slow@example.org"}


@pytest.mark.django_db(transaction=True)
def test_the_bounce_door_refuses_other_domains_and_oversized_messages(relay, settings):
    settings.MAX_MESSAGE_BYTES = 2000
    with BounceDoor() as door, smtplib.SMTP(door.hostname, door.port, timeout=10) as client:
        client.ehlo("mx.example")
        assert client.mail("<>")[0] == 250
        assert client.rcpt("someone@example.org")[0] == 550  # not a relay
        assert client.rcpt(f"bounce+anything@{settings.BOUNCE_DOMAIN}")[0] == 250
        code, _reply = client.data(b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n")
        assert code == 552
    assert not UnattributedBounce.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_receive_bounce_records_a_report_piped_by_an_mta(relay):
    hosting = HostingFactory()
    message = _delivered(hosting, relay, DEAD)
    raw = bounce_sample("postfix-hard", return_path=return_path_of(message), recipient=DEAD)
    env = {"DATABASE_URL": shared_database_url(), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "manage.py", "receive_bounce", "-f", "", return_path_of(message)]

    piped = subprocess.run(command, input=raw, capture_output=True, cwd=settings.BASE_DIR, env=env, timeout=60)
    assert (piped.returncode, piped.stdout.strip()) == (0, b"receive_bounce: error"), piped.stderr
    again = subprocess.run(command, input=raw, capture_output=True, cwd=settings.BASE_DIR, env=env, timeout=60)
    assert (again.returncode, again.stdout.strip()) == (0, b"receive_bounce: duplicate"), again.stderr
    assert DeliveryError.objects.get(hosting=hosting).kind == ErrorKind.DSN

    empty = subprocess.run(command, input=b"", capture_output=True, cwd=settings.BASE_DIR, env=env, timeout=60)
    assert empty.returncode == 65
    down = env | {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
    unreachable = subprocess.run(command, input=raw, capture_output=True, cwd=settings.BASE_DIR, env=down, timeout=60)
    assert unreachable.returncode == 75, unreachable.stderr  # the MTA keeps it and tries again


def test_a_return_path_keeps_its_form_so_bounces_of_mail_sent_before_an_upgrade_are_attributed(settings):
    """The token's HMAC is the first 16 base32 characters of HMAC-SHA256 over `hosting-message-index`,
    with the key derived from SECRET_KEY: a known answer, worked out here the long way."""
    import base64
    import hashlib
    import hmac

    from mailqueue.return_path import return_path_for

    settings.SECRET_KEY = "known " * 9  # a key of this test only
    settings.BOUNCE_LOCAL_PART, settings.BOUNCE_DOMAIN = "bounce", "bounces.example.net"
    key = hashlib.sha256(f"mailqueue.return_path{settings.SECRET_KEY}".encode()).digest()
    mac = base64.b32encode(hmac.new(key, b"12-3456-2", hashlib.sha256).digest()).decode().lower()[:16]

    address = return_path_for(hosting_id=12, message_pk=3456, index=2)

    assert address == f"bounce+12-3456-2-{mac}@bounces.example.net"
    assert (return_path_parse(address).hosting_id, return_path_parse(address).message_pk) == (12, 3456)


def test_a_return_path_asked_for_twice_follows_the_key_and_domain_of_the_moment(settings):
    """Delivery asks for a message's first return path twice (its commands go ahead, then it is
    sent): the second answer is kept from the first, never from another key or domain."""
    from mailqueue.return_path import return_path_for

    settings.SECRET_KEY = "first " * 9
    first = return_path_for(hosting_id=1, message_pk=2, index=0)
    assert return_path_for(hosting_id=1, message_pk=2, index=0) == first

    settings.SECRET_KEY = "second " * 9
    rotated = return_path_for(hosting_id=1, message_pk=2, index=0)
    settings.BOUNCE_DOMAIN = "elsewhere.example.net"
    moved = return_path_for(hosting_id=1, message_pk=2, index=0)

    assert len({first, rotated, moved}) == 3
    assert moved.endswith("@elsewhere.example.net")
    assert return_path_parse(moved).message_pk == 2
