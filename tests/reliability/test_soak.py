"""A bounded soak (SPEC §3, §4): concurrent SMTP clients, customer actions, delivery, purge and expiry.

Several clients submit through a live SMTP door for two hostings while a customer blocks,
unblocks, purges (grace 0) and cancels on one of them, delivery threads hand mail to a live relay
that notes when it received each message, a maintenance thread runs due purges, and part of the
held mail passes its 72 h (its `held_until` moved into the past: the clock cannot be moved for one
thread only) and expires. Afterwards every accepted message is accounted for exactly once, the
counters and the Events agree with the messages, and no claim made after a block took its mail.
"""

import collections
import dataclasses
import datetime
import random
import re
import smtplib
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone

from hosting.models import Plan
from mailqueue import delivery, expiry, purge
from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import Action, DailyCounter, Event, MailService, Message, MessageStatus, State
from mailqueue.purge import mail_service_purge_cancel, mail_service_purge_request
from mailqueue.relay import relay_from_settings
from mailqueue.smtpd import AuthFailureThrottle, SubmissionHandler
from mailqueue.state import Actor, MailServiceError
from tests.factories import HostingFactory
from tests.support import SubmissionDoor, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]

SOAK_SECONDS = 12
CLIENTS = 4
MESSAGES_PER_SESSION = 5
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
QUEUED_AS = re.compile(r"queued as (\d+)")


def message_id_of(raw: bytes) -> str:
    return MESSAGE_ID.search(raw).group(1).decode()


class RecordingHandler:
    """A relay that accepts everything and notes, per Message-ID, when each copy arrived."""

    def __init__(self):
        self.received: list[tuple[str, datetime.datetime]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.received.append((message_id_of(envelope.original_content), timezone.now()))
        return "250 OK"


CLAIM_WINDOW = threading.local()  # (started, returned) of the delivery thread's last claim


def claim_timed(claim):
    """`delivery_claim`, noting in the thread when the claim began and when it had committed."""

    def timed(**kwargs):
        started = timezone.now()
        result = claim(**kwargs)
        CLAIM_WINDOW.value = (started, timezone.now())
        return result

    return timed


class ClaimRecordingRelay:
    """The configured relay, noting for each message handed over when its batch was claimed."""

    def __init__(self, claims: dict[str, tuple[datetime.datetime, datetime.datetime]]):
        self._relay = relay_from_settings()
        self._claims = claims

    def __getattr__(self, name):
        return getattr(self._relay, name)

    def send(self, *, sender, recipients, raw, **hooks):
        self._claims[message_id_of(raw)] = CLAIM_WINDOW.value
        return self._relay.send(sender=sender, recipients=recipients, raw=raw, **hooks)


@dataclasses.dataclass
class Soak:
    stop_clients: threading.Event = dataclasses.field(default_factory=threading.Event)
    stop_workers: threading.Event = dataclasses.field(default_factory=threading.Event)
    accepted: list[tuple[int, str, int]] = dataclasses.field(default_factory=list)  # (hosting, Message-ID, pk)
    refused: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
    transitions: list[tuple[str, datetime.datetime]] = dataclasses.field(default_factory=list)  # (action, returned)
    expired_by_step: list[int] = dataclasses.field(default_factory=list)
    claims: dict[str, tuple] = dataclasses.field(default_factory=dict)  # Message-ID -> claim window
    errors: list[BaseException] = dataclasses.field(default_factory=list)


def thread(soak: Soak, target, *args) -> threading.Thread:
    def body():
        try:
            target(*args)
        except BaseException as error:  # surfaced by the test
            soak.errors.append(error)
        finally:
            connection.close()

    started = threading.Thread(target=body, name=getattr(target, "__name__", "soak"))
    started.start()
    return started


def client_run(soak: Soak, door, hosting, index: int) -> None:
    n = 0
    while not soak.stop_clients.is_set():
        with smtplib.SMTP(door.host, door.port, timeout=60) as smtp:
            smtp.login(hosting.service_name, hosting.smtp_password)
            for _ in range(MESSAGES_PER_SESSION):
                message_id = f"<soak-{hosting.pk}-{index}-{n}@test>"
                n += 1
                raw = (
                    f"From: app@shop.example\r\nTo: buyer{n}@example.org\r\nSubject: soak {n}\r\n"
                    f"Message-ID: {message_id}\r\n\r\nHello\r\n"
                ).encode()
                smtp.mail("app@shop.example")
                smtp.rcpt(f"buyer{n}@example.org")
                code, reply = smtp.data(raw)
                if code == 250:
                    soak.accepted.append((hosting.pk, message_id, int(QUEUED_AS.search(reply.decode()).group(1))))
                else:
                    soak.refused.append((message_id, code, reply.decode()))


def delivery_run(soak: Soak) -> None:
    while not soak.stop_workers.is_set():
        relay = ClaimRecordingRelay(soak.claims)
        if not delivery_run_batch(limit=20, relay=relay).claimed:
            time.sleep(0.05)


def maintenance_run(soak: Soak) -> None:
    """The purge watchdog, run often (the grace delay is 0)."""
    while not soak.stop_workers.is_set():
        for hosting_id in purge.purges_due():
            purge.purge_run(hosting_id=hosting_id)
        time.sleep(0.05)


def customer_run(soak: Soak, hosting, seed: int) -> None:
    """Block, expire part of the held mail, unblock, purge, cancel… in a seeded order."""
    rng = random.Random(seed)
    actor = Actor.api("soak")
    calls = {
        "block": mail_service_block,
        "unblock": mail_service_unblock,
        "purge": mail_service_purge_request,
        "cancel_purge": mail_service_purge_cancel,
    }

    def act(name: str) -> bool:
        try:
            calls[name](hosting=hosting, actor=actor)
        except MailServiceError:
            return False  # e.g. a cancel after the deletion started: refused, nothing changed
        soak.transitions.append((name, timezone.now()))
        return True

    def pause():
        time.sleep(rng.uniform(0.2, 0.6))

    def state() -> str:
        return MailService.objects.values_list("state", flat=True).get(hosting=hosting)

    def expire_some_held() -> None:
        held = list(
            Message.objects.filter(hosting=hosting, status=MessageStatus.HELD)
            .order_by("id")
            .values_list("id", flat=True)
        )
        past = timezone.now() - datetime.timedelta(seconds=1)
        Message.objects.filter(id__in=held[: len(held) // 2], status=MessageStatus.HELD).update(held_until=past)
        soak.expired_by_step.append(expiry.held_expire().get(hosting.pk, 0))

    step = 0
    while not soak.stop_clients.is_set():
        act("block")
        pause()
        if step % 3 == 0:
            expire_some_held()
            pause()
            act("unblock")
        elif step % 3 == 1:
            act("purge")
            if rng.random() < 0.7:
                act("cancel_purge")  # refused when the (immediate) purge already started
            pause()
            if state() == State.BLOCKED:
                act("unblock")
        else:
            act("purge")
        deadline = time.monotonic() + 20
        while state() == State.PURGING and time.monotonic() < deadline:
            time.sleep(0.05)
        pause()
        step += 1


def test_soak_every_accepted_message_is_accounted_for_once(settings, monkeypatch):
    monkeypatch.setattr(delivery, "delivery_claim", claim_timed(delivery.delivery_claim))
    settings.PURGE_GRACE_SECONDS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SMTP_RELAY_TIMEOUT = 10
    controlled = HostingFactory(plan=Plan.PERFORMANCE)  # 2000 an hour: the hourly limit stays out of the way
    steady = HostingFactory(plan=Plan.PERFORMANCE)
    soak = Soak()
    relay_handler = RecordingHandler()
    relay = Controller(relay_handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    door = SubmissionDoor(
        addr="127.0.0.1:0",
        handler=SubmissionHandler(throttle=AuthFailureThrottle(max_failures=100, window=60), db_threads=4),
    )
    relay.start()
    workers: list[threading.Thread] = []
    clients: list[threading.Thread] = []
    try:
        settings.SMTP_RELAY_URL = f"smtp://127.0.0.1:{relay.port}"
        door.start()
        workers = [thread(soak, delivery_run, soak) for _ in range(2)] + [thread(soak, maintenance_run, soak)]
        clients = [
            thread(soak, client_run, soak, door, (controlled, steady)[index % 2], index) for index in range(CLIENTS)
        ]
        clients.append(thread(soak, customer_run, soak, controlled, 20251))
        time.sleep(SOAK_SECONDS)
    finally:
        soak.stop_clients.set()
        for started in clients:
            started.join(60)
        # Drain: what is due is delivered, a purge in progress completes.
        deadline = time.monotonic() + 30
        busy = Message.objects.filter(
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING], hosting__mail_service__state=State.ACTIVE
        )
        while time.monotonic() < deadline and (
            busy.exists() or MailService.objects.filter(state=State.PURGING).exists()
        ):
            time.sleep(0.2)
        soak.stop_workers.set()
        for started in workers:
            started.join(60)
        door.stop()
        relay.stop()
    assert not any(started.is_alive() for started in clients + workers), "a soak thread is stuck"
    assert not soak.errors, soak.errors
    assert not soak.refused, soak.refused[:5]

    # --- every accepted message, exactly once
    pks = [pk for _hosting, _message_id, pk in soak.accepted]
    assert len(pks) == len(set(pks)) and len(pks) >= 100, len(pks)
    rows = {row["id"]: row for row in Message.objects.values("id", "hosting_id", "message_id", "status")}
    assert set(rows) <= set(pks)  # nothing stored that was not accepted
    gone = collections.Counter()
    statuses = collections.Counter()
    for hosting_id, message_id, pk in soak.accepted:
        row = rows.get(pk)
        if row is None:
            gone[hosting_id] += 1
            continue
        assert (row["hosting_id"], row["message_id"]) == (hosting_id, message_id)
        statuses[hosting_id, row["status"]] += 1
    final_state = MailService.objects.get(hosting=controlled).state
    assert final_state in {State.ACTIVE, State.BLOCKED}
    remaining = {MessageStatus.SENT, MessageStatus.HELD} if final_state == State.BLOCKED else {MessageStatus.SENT}
    assert {status for (_hosting, status) in statuses} <= remaining, statuses
    assert gone[steady.pk] == 0
    assert statuses[steady.pk, MessageStatus.SENT] == sum(1 for h, _m, _p in soak.accepted if h == steady.pk)

    # --- gone = purged + expired, in the counters and in the Events
    def total(hosting, field: str) -> int:
        return sum(DailyCounter.objects.filter(hosting=hosting).values_list(field, flat=True))

    def event_total(hosting, action: Action) -> int:
        return sum(Event.objects.filter(hosting=hosting, action=action).values_list("message_count", flat=True))

    purged, expired = total(controlled, "purged"), total(controlled, "expired")
    assert purged == event_total(controlled, Action.COMPLETE_PURGE)
    assert expired == event_total(controlled, Action.EXPIRE) == sum(soak.expired_by_step)
    assert gone[controlled.pk] == purged + expired
    assert purged > 0 and expired > 0, "the soak did not exercise purge and expiry"
    for hosting in (controlled, steady):
        sent = Message.objects.filter(hosting=hosting, status=MessageStatus.SENT).count()
        assert total(hosting, "sent") == sent
    assert total(steady, "purged") == total(steady, "expired") == 0

    # --- the relay got each sent message once and nothing else
    copies = collections.Counter(message_id for message_id, _at in relay_handler.received)
    sent_ids = set(Message.objects.filter(status=MessageStatus.SENT).values_list("message_id", flat=True))
    assert set(copies) == sent_ids
    assert max(copies.values()) == 1

    # --- nothing of the controlled hosting reached the relay from a claim made after a block returned
    blocks = iter(at for name, at in soak.transitions if name == "block")
    windows = []  # [block returned, back to active)
    start = None
    for action, created_at in (
        Event.objects.filter(hosting=controlled).order_by("created_at", "id").values_list("action", "created_at")
    ):
        if action == Action.BLOCK:
            start = next(blocks)
        elif action in {Action.UNBLOCK, Action.COMPLETE_PURGE} and start is not None:
            windows.append((start, created_at))
            start = None
    if start is not None:
        windows.append((start, timezone.now()))
    assert len(windows) >= 3, windows
    controlled_ids = {message_id for hosting_id, message_id, _pk in soak.accepted if hosting_id == controlled.pk}
    received_in_windows = 0
    for message_id, received_at in relay_handler.received:
        if message_id not in controlled_ids:
            continue
        claim_started, claim_ended = soak.claims[message_id]
        for blocked_from, active_again in windows:
            # A claim wholly inside a blocked window took mail of a blocked hosting (SPEC §4.2).
            assert not (blocked_from <= claim_started and claim_ended <= active_again), (message_id, blocked_from)
            if blocked_from <= received_at < active_again:
                received_in_windows += 1  # a claim made before the block: allowed (SPEC §4.2)
