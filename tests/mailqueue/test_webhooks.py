"""Webhooks (SPEC §10.4) against a real HTTP receiver: what is sent, signed and retried, and
that an endpoint's failures never touch mail flow; where webhooks may not go (SSRF)."""

import datetime
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core import mail
from django.utils import timezone, translation

from mailqueue import dispatch, tasks
from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import MailService, State, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from mailqueue.submission import message_accept
from mailqueue.webhook_addresses import WebhookUrlRefused, webhook_url_check
from mailqueue.webhook_sending import webhooks_send_due
from mailqueue.webhooks import webhook_endpoint_create, webhook_secret_rotate, webhook_test_send
from tests.factories import CustomerFactory, HostingFactory, UserFactory
from tests.mailqueue.test_delivery import LiveRelay
from tests.support import silent_resolver


class Receiver:
    """An HTTP server in a thread that records each POST and answers `status`."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"thanks" if receiver.status < 300 else b"broken")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/portal"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.requests]


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (docs/WEBHOOKS.md)."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver listens on loopback
    with Receiver() as live:
        yield live


@pytest.fixture
def relay(settings):
    with LiveRelay() as live:
        settings.SMTP_RELAY_URL = live.url
        yield live


@pytest.fixture
def in_process(monkeypatch):
    """Notices enqueued after commit run in this process (no worker in these tests); delivery
    and the webhook sender run when a test calls them."""

    def run(name, *args, **kwargs):
        if name not in (dispatch.WEBHOOKS_SEND, dispatch.DELIVERY_RUN):
            getattr(tasks, name.rsplit(".")[-1])(*args)

    monkeypatch.setattr(dispatch, "task_send", run)


def _accept(hosting, recipient="buyer@example.org"):
    raw = f"From: shop@{hosting.service_name}\r\nTo: {recipient}\r\nSubject: Order 7\r\n\r\nHi\r\n".encode()
    return message_accept(hosting=hosting, sender=f"shop@{hosting.service_name}", recipients=[recipient], raw=raw)


@pytest.mark.django_db
def test_a_sent_message_is_told_signed_once_and_mail_flow_never_waits_for_it(receiver, relay):
    hosting = HostingFactory()
    _endpoint, secret = webhook_endpoint_create(customer=hosting.customer, url=receiver.url, events=["message.sent"])
    message = _accept(hosting)

    assert delivery_run_batch().sent == 1
    assert receiver.requests == []  # delivery only wrote the outbox row; no HTTP on the mail path
    assert webhooks_send_due() == 1

    [(headers, body)] = receiver.requests
    assert verify(secret, headers["X-Portal-Signature"], body)
    assert not verify(secret + "x", headers["X-Portal-Signature"], body)
    event = json.loads(body)
    assert event["type"] == "message.sent" == headers["X-Portal-Event"]
    assert event["id"] == headers["X-Portal-Delivery"]
    assert event["data"]["hosting"] == hosting.service_name
    assert event["data"]["message"]["id"] == message.pk
    assert event["data"]["message"]["recipients"][0]["status"] == "sent"
    assert "raw" not in body.decode() and "Hi" not in event["data"]["message"].values()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.DELIVERED, 1)
    assert delivery.attempt_log.get().status_code == 200
    assert webhooks_send_due() == 0  # delivered: never again


@pytest.mark.django_db(transaction=True)
def test_a_failing_endpoint_is_retried_with_back_off_then_disabled_after_a_day_with_a_notice(
    receiver, relay, in_process
):
    customer = CustomerFactory(language="en", contact_email="dev@acme.example")
    hosting = HostingFactory(customer=customer)
    webhook_endpoint_create(customer=customer, url=receiver.url, events=["message.sent", "message.failed"])
    receiver.status = 500
    _accept(hosting)
    delivery_run_batch()

    assert webhooks_send_due() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.PENDING, 1)
    first_wait = delivery.next_attempt_at - timezone.now()
    assert datetime.timedelta(seconds=20) < first_wait <= datetime.timedelta(seconds=30)
    assert webhooks_send_due() == 0  # not due yet: the wait is a row, not a sleep
    assert delivery.attempt_log.get().reply == "broken"

    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=1)):
        assert webhooks_send_due() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert delivery.next_attempt_at - delivery.attempt_log.first().at == datetime.timedelta(seconds=60)

    with time_machine.travel(timezone.now() + datetime.timedelta(hours=25)):
        webhooks_send_due()
    endpoint = WebhookEndpoint.objects.get()
    assert not endpoint.active and endpoint.disabled_at is not None
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.FAILED
    [notice] = mail.outbox
    assert notice.to == ["dev@acme.example"] and receiver.url in notice.body

    # Mail still flows, and a disabled endpoint gets nothing new.
    _accept(hosting)
    assert delivery_run_batch().sent == 1
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_a_recovered_endpoint_gets_the_event_and_its_failures_are_forgotten(receiver, relay):
    hosting = HostingFactory()
    webhook_endpoint_create(customer=hosting.customer, url=receiver.url, events=["message.sent"])
    receiver.status = 503
    _accept(hosting)
    delivery_run_batch()
    webhooks_send_due()
    assert WebhookEndpoint.objects.get().failing_since is not None

    receiver.status = 200
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=5)):
        assert webhooks_send_due() == 1
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.DELIVERED
    assert WebhookEndpoint.objects.get().failing_since is None
    assert [event["type"] for event in receiver.events()] == ["message.sent", "message.sent"]
    assert len({event["id"] for event in receiver.events()}) == 1  # the same event, delivered at least once


@pytest.mark.django_db
def test_only_the_chosen_events_of_the_customers_own_hostings_are_sent(receiver, relay):
    hosting = HostingFactory()
    other = HostingFactory()
    webhook_endpoint_create(customer=hosting.customer, url=receiver.url, events=["message.failed"])
    _accept(hosting)
    _accept(other)
    delivery_run_batch()
    assert WebhookDelivery.objects.count() == 0  # sent, not failed; the other customer's is not ours

    relay.handler.rcpt_replies = {"gone@example.org": ["550 5.1.1 no such user"]}
    _accept(hosting, "gone@example.org")
    delivery_run_batch()
    webhooks_send_due()
    [event] = receiver.events()
    assert event["type"] == "message.failed"
    assert event["data"]["message"]["recipients"][0]["reply"] == "5.1.1 no such user"


@pytest.mark.django_db(transaction=True)
def test_state_changes_holds_and_purges_are_told_and_operators_actions_get_a_notice(receiver, in_process, settings):
    settings.PURGE_GRACE_SECONDS = 0
    customer = CustomerFactory(language="fr")
    hosting = HostingFactory(customer=customer)
    events = ["service.state_changed", "message.held", "message.purged"]
    webhook_endpoint_create(customer=customer, url=receiver.url, events=events)
    operator = UserFactory(is_staff=True)

    mail_service_block(hosting=hosting, actor=Actor.operator(operator), comment="Plainte reçue pour hameçonnage")
    _accept(hosting)
    mail_service_purge_request(hosting=hosting, actor=Actor.operator(operator))  # due at once: it runs
    assert MailService.objects.get(hosting=hosting).state == State.ACTIVE
    webhooks_send_due()

    told = [(event["type"], event["data"].get("to"), event["data"].get("count")) for event in receiver.events()]
    assert told == [
        ("service.state_changed", "blocked", None),
        ("message.held", None, None),
        ("service.state_changed", "purging", None),
        ("service.state_changed", "active", None),
        ("message.purged", None, 1),
    ]
    subjects = [notice.subject for notice in mail.outbox]
    assert subjects == [
        f"[{hosting.service_name}] Envoi des e-mails bloqué par notre équipe",
        f"[{hosting.service_name}] Purge terminée",
    ], subjects
    assert "Plainte reçue pour hameçonnage" in mail.outbox[0].body
    assert "1 e-mail en attente a été supprimé" in mail.outbox[1].body


@pytest.mark.django_db(transaction=True)
def test_the_customers_own_block_and_unblock_send_no_notice(in_process):
    hosting = HostingFactory()
    user = UserFactory()
    mail_service_block(hosting=hosting, actor=Actor.customer(user))
    mail_service_unblock(hosting=hosting, actor=Actor.customer(user))
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_a_test_event_is_sent_at_once_and_a_rotated_secret_signs_from_then_on(receiver, in_process):
    customer = CustomerFactory()
    endpoint, first_secret = webhook_endpoint_create(customer=customer, url=receiver.url, events=["message.sent"])
    webhook_test_send(endpoint=endpoint)
    assert webhooks_send_due() == 1
    second_secret = webhook_secret_rotate(endpoint=endpoint)
    webhook_test_send(endpoint=endpoint)
    assert webhooks_send_due() == 1

    (first_headers, first_body), (second_headers, second_body) = receiver.requests
    assert json.loads(first_body)["type"] == "test"
    assert verify(first_secret, first_headers["X-Portal-Signature"], first_body)
    assert verify(second_secret, second_headers["X-Portal-Signature"], second_body)
    assert not verify(first_secret, second_headers["X-Portal-Signature"], second_body)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://93.184.216.34/hook",
        "http://user:pass@93.184.216.34/hook",
    ],
)
def test_webhooks_never_go_to_private_local_or_metadata_addresses(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(WebhookUrlRefused):
        webhook_url_check(url)


def test_a_public_address_is_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    webhook_url_check("https://93.184.216.34/hooks")  # no exception


@pytest.mark.django_db
def test_an_endpoint_re_pointed_to_a_private_address_is_refused_at_sending_time(receiver, relay, settings):
    hosting = HostingFactory()
    webhook_endpoint_create(customer=hosting.customer, url=receiver.url, events=["message.sent"])
    _accept(hosting)
    delivery_run_batch()
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False  # as if the name now resolved to loopback

    with translation.override("en"):  # the refusal is written in the worker's language
        webhooks_send_due()

    assert receiver.requests == []
    attempt = WebhookDelivery.objects.get().attempt_log.get()
    assert attempt.status_code is None and "private" in attempt.reply


def test_a_host_name_the_resolver_does_not_answer_for_in_time_is_refused_at_once():
    """A resolver gone silent would hold the customer's request (or the sending worker) for its
    own timeouts, 10 s and more: the name is refused after RESOLVE_TIMEOUT_SECONDS instead."""
    import time

    started = time.monotonic()
    with (
        silent_resolver(gives_up_after=0.2),
        translation.override("en"),
        pytest.raises(WebhookUrlRefused, match="did not resolve in time"),
    ):
        webhook_url_check("https://hooks.example.com/in")
    assert time.monotonic() - started < 2


@pytest.mark.django_db
def test_an_endpoint_whose_name_does_not_resolve_in_time_is_a_failed_attempt_tried_again_later(receiver, relay):
    """The sending worker is held RESOLVE_TIMEOUT_SECONDS, not the resolver's own timeouts; the
    attempt is recorded with the reason and the delivery waits for its back-off."""
    import time

    hosting = HostingFactory()
    webhook_endpoint_create(customer=hosting.customer, url=receiver.url, events=["message.sent"])
    _accept(hosting)
    delivery_run_batch()

    started = time.monotonic()
    with silent_resolver(gives_up_after=0.2), translation.override("en"):
        webhooks_send_due()

    assert time.monotonic() - started < 3
    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    attempt = delivery.attempt_log.get()
    assert attempt.status_code is None and "did not resolve in time" in attempt.reply
    assert delivery.status == WebhookDeliveryStatus.PENDING and delivery.next_attempt_at > timezone.now()


def test_a_resolver_error_is_the_cannot_be_resolved_refusal(monkeypatch):
    import socket

    def failing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing)
    with translation.override("en"), pytest.raises(WebhookUrlRefused, match="cannot be resolved"):
        webhook_url_check("https://nowhere.example.com/in")
