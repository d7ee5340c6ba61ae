"""Delivery: claim due messages in batches, hand them to the relay, record each recipient.

Claims use SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL; on SQLite every transaction is
IMMEDIATE, so claims are serialised by the database lock. A claim only takes messages of
services that are active at claim time: once a block commits, no later claim takes its mail.
Results are recorded per batch; a worker dying between the relay's reply and that commit is
the only way a message is delivered twice (its claim is recovered by `claims_recover`).
"""

import dataclasses
import datetime
import logging
import time
import uuid
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from hosting.models import PLAN_HOURLY_LIMITS, Plan
from mailqueue.counters import counter_add
from mailqueue.models import (
    DeliveryError,
    MailService,
    Message,
    MessageStatus,
    RecipientStatus,
    RelayHandoff,
    State,
)
from mailqueue.relay import RelayUnavailable, relay_from_settings
from mailqueue.services import mail_service_lock_shared

logger = logging.getLogger(__name__)
HOUR = datetime.timedelta(hours=1)
# Raw contents read per query while delivering: few queries, yet bounded memory (10 MB messages).
RAW_CHUNK_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    held: int = 0
    connections: int = 0


def _hourly_limits(hosting_ids) -> dict[int, int]:
    rows = MailService.objects.filter(hosting_id__in=hosting_ids).values_list(
        "hosting_id", "hourly_limit_override", "hosting__plan"
    )
    return {
        hosting_id: override if override is not None else PLAN_HOURLY_LIMITS[Plan(plan)]
        for hosting_id, override, plan in rows
    }


def delivery_claim(*, limit: int | None = None) -> tuple[uuid.UUID, list[int]]:
    """Claim up to `limit` due queued messages of active services, within hourly limits.

    Messages beyond a hosting's rolling-hour limit stay queued with `next_attempt_at` moved to
    when the oldest hand-off of the hour ages out: they wait, they are not rejected.
    """
    limit = limit or settings.DELIVERY_BATCH_SIZE
    token = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        # A hosting over its limit pushes its candidates an hour ahead and the next round looks
        # further: one tenant's backlog never hides the others' mail from a claim.
        taken: list[int] = []
        for _round in range(CLAIM_ROUNDS):
            taken_now, postponed = _claim_round(token=token, now=now, limit=limit - len(taken))
            taken += taken_now
            if not postponed or len(taken) >= limit:
                break
    return token, taken


# Rounds of candidates one claim looks at when every candidate so far was over its hourly limit.
CLAIM_ROUNDS = 10
_CLAIM_LOCK_NAMESPACE = 0x636C6169 << 32  # "clai": serialises the hourly-limit count per hosting


def _claim_round(*, token: uuid.UUID, now: datetime.datetime, limit: int) -> tuple[list[int], int]:
    """One round of `delivery_claim` (inside its transaction): the ids taken, and how many
    candidates were postponed because their hosting had reached its hourly limit."""
    candidates = list(
        Message.objects.filter(
            status=MessageStatus.QUEUED,
            next_attempt_at__lte=now,
            hosting__mail_service__state=State.ACTIVE,
        )
        .order_by("next_attempt_at", "id")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("id", "hosting_id")[:limit]
    )
    if not candidates:
        return [], 0
    hosting_ids = {hosting_id for _id, hosting_id in candidates}
    if connection.vendor == "postgresql":
        # Concurrent claims count each hosting's hand-offs one after the other, so together
        # they never exceed its limit (SQLite transactions are serialised already).
        with connection.cursor() as cursor:
            for hosting_id in sorted(hosting_ids):
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK_NAMESPACE + (hosting_id & 0xFFFFFFFF)])
    limits = _hourly_limits(hosting_ids)
    usage = {
        row["hosting_id"]: row
        for row in RelayHandoff.objects.filter(hosting_id__in=hosting_ids, at__gt=now - HOUR)
        .values("hosting_id")
        .annotate(used=Count("id"), oldest=Min("at"))
    }
    taken: list[int] = []
    waiting: dict[int, list[int]] = defaultdict(list)
    per_hosting: dict[int, int] = defaultdict(int)
    for message_id, hosting_id in candidates:
        used = usage.get(hosting_id, {}).get("used", 0)
        if used + per_hosting[hosting_id] < limits.get(hosting_id, 0):
            per_hosting[hosting_id] += 1
            taken.append(message_id)
        else:
            waiting[hosting_id].append(message_id)
    for hosting_id, message_ids in waiting.items():
        oldest = usage.get(hosting_id, {}).get("oldest") or now
        Message.objects.filter(id__in=message_ids).update(next_attempt_at=oldest + HOUR)
    if taken:
        Message.objects.filter(id__in=taken).update(
            status=MessageStatus.SENDING, claim_token=token, claimed_at=now, attempts=F("attempts") + 1
        )
        RelayHandoff.objects.bulk_create(
            [
                RelayHandoff(hosting_id=hosting_id, at=now)
                for hosting_id, count in per_hosting.items()
                for _ in range(count)
            ]
        )
    return taken, sum(len(message_ids) for message_ids in waiting.values())


def _backoff(attempts: int) -> datetime.timedelta:
    seconds = settings.RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return datetime.timedelta(seconds=min(seconds, settings.RETRY_MAX_DELAY_SECONDS))


def _outcome(message: Message, results: dict[str, tuple[int, str]], now: datetime.datetime) -> list[DeliveryError]:
    """Apply the relay's per-recipient results to `message` (in memory); return new errors."""
    errors: list[DeliveryError] = []
    give_up = now + _backoff(message.attempts) > message.created_at + datetime.timedelta(
        seconds=settings.RETRY_MAX_AGE_SECONDS
    )
    for recipient in message.recipients:
        if recipient["status"] != RecipientStatus.PENDING or recipient["address"] not in results:
            continue
        code, reply = results[recipient["address"]]
        recipient["code"], recipient["reply"] = code, reply
        message.last_reply = f"{code} {reply}"[:500]
        if 200 <= code < 300:
            recipient["status"] = RecipientStatus.SENT
        elif 500 <= code < 600 or give_up:
            recipient["status"] = RecipientStatus.FAILED
            text = f"{code} {reply}" if code >= 500 else f"{code} {reply} (retries exhausted)"
            errors.append(
                DeliveryError(
                    hosting_id=message.hosting_id,
                    message_id=message.pk,
                    created_at=now,
                    recipient=recipient["address"],
                    reply=text[:500],
                    subject=message.subject,
                )
            )
    return errors


# What `_record` writes back for each message of a batch (besides the claim, cleared, and the raw
# content, dropped once the message is done).
_RECORDED_FIELDS = (
    "status",
    "recipients",
    "completed_at",
    "next_attempt_at",
    "held_at",
    "held_until",
    "last_reply",
)


def _messages_save(messages: list[Message]) -> None:
    """Write the outcome of `messages` with one statement run for every row (executemany):
    bulk_update's CASE expressions cost more than the delivery itself (see bench/delivery.py).
    The raw content is never read back: it is dropped for finished messages, kept otherwise."""
    if not messages:
        return
    quote = connection.ops.quote_name
    fields = [Message._meta.get_field(name) for name in _RECORDED_FIELDS]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    raw = quote(Message._meta.get_field("raw").column)
    sql = (
        f"UPDATE {quote(Message._meta.db_table)} SET {assignments}, "
        f"{quote('claim_token')} = NULL, {quote('claimed_at')} = NULL, "
        f"{raw} = CASE WHEN %s THEN NULL ELSE {raw} END "
        f"WHERE {quote(Message._meta.pk.column)} = %s"
    )
    rows = [
        [field.get_db_prep_save(getattr(message, field.attname), connection) for field in fields]
        + [message.completed_at is not None, message.pk]
        for message in messages
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _record(token: uuid.UUID, outcomes: list[tuple[Message, list[DeliveryError]]], result: BatchResult) -> None:
    """Store a batch's results in one transaction, only for messages still claimed by `token`."""
    now = timezone.now()
    with transaction.atomic():
        states = mail_service_lock_shared(hosting_ids={message.hosting_id for message, _ in outcomes})
        still_ours = set(
            Message.objects.filter(claim_token=token, status=MessageStatus.SENDING).values_list("id", flat=True)
        )
        updated: list[Message] = []
        all_errors: list[DeliveryError] = []
        counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for message, errors in outcomes:
            if message.pk not in still_ours:
                continue
            pending = any(r["status"] == RecipientStatus.PENDING for r in message.recipients)
            message.claim_token = None
            message.claimed_at = None
            if not pending:
                any_sent = any(r["status"] == RecipientStatus.SENT for r in message.recipients)
                message.status = MessageStatus.SENT if any_sent else MessageStatus.FAILED
                message.completed_at = now
                message.next_attempt_at = None
                counts[message.hosting_id]["sent"] += int(any_sent)
                result.sent += int(any_sent)
                result.failed += int(not any_sent)
            elif states[message.hosting_id] != State.ACTIVE:
                # Blocked while in flight: what is left waits with the rest of the held mail.
                message.status = MessageStatus.HELD
                message.held_at = now
                message.held_until = now + datetime.timedelta(hours=settings.HOLD_HOURS)
                message.next_attempt_at = None
                counts[message.hosting_id]["held"] += 1
                result.held += 1
            else:
                message.status = MessageStatus.DEFERRED
                message.next_attempt_at = now + _backoff(message.attempts)
                result.deferred += 1
            counts[message.hosting_id]["errors"] += len(errors)
            all_errors.extend(errors)
            updated.append(message)
            logger.info(
                "message %s of hosting %s: %s (%s)",
                message.pk,
                message.hosting_id,
                message.status,
                message.last_reply,
                extra={"hosting_id": message.hosting_id, "message_pk": message.pk, "message_id": message.message_id},
            )
        _messages_save(updated)
        DeliveryError.objects.bulk_create(all_errors)
        for hosting_id, increments in sorted(counts.items()):  # one lock order: no deadlock between batches
            counter_add(hosting_id=hosting_id, **increments)


def _raw_chunks(messages: list[Message]):
    """The batch in runs whose raw contents add up to at most RAW_CHUNK_BYTES (one message at least)."""
    chunk: list[Message] = []
    total = 0
    for message in messages:
        if chunk and total + message.size > RAW_CHUNK_BYTES:
            yield chunk
            chunk, total = [], 0
        chunk.append(message)
        total += message.size
    if chunk:
        yield chunk


def _pending(message: Message) -> list[str]:
    return [r["address"] for r in message.recipients if r["status"] == RecipientStatus.PENDING]


def _send(relay, message: Message, raw: bytes) -> dict[str, tuple[int, str]]:
    """Hand one message to the relay. An unexpected error defers this message only: the rest of
    the batch goes on, and what was already delivered is still recorded."""
    pending = _pending(message)
    try:
        return relay.send(sender=message.sender, recipients=pending, raw=raw)
    except RelayUnavailable:
        raise
    except Exception as error:
        logger.exception("relay error on message %s", message.pk)
        relay.close()  # its session is in an unknown state; the next message reopens it
        return dict.fromkeys(pending, (451, f"4.3.0 local error while sending: {error}"[:200]))


def _handoffs_return(messages: list[Message]) -> None:
    """Messages claimed but never handed to the relay give back their place in the hourly limit."""
    per_claim: dict[tuple[int, datetime.datetime], int] = defaultdict(int)
    for message in messages:
        per_claim[(message.hosting_id, message.claimed_at)] += 1
    for (hosting_id, at), count in per_claim.items():
        ids = list(RelayHandoff.objects.filter(hosting_id=hosting_id, at=at).values_list("id", flat=True)[:count])
        RelayHandoff.objects.filter(id__in=ids).delete()


def delivery_run_batch(*, limit: int | None = None, relay=None) -> BatchResult:
    """Claim one batch and deliver it over one relay connection. Returns what happened.

    Raw contents are read a few at a time (bounded memory, few queries); results are
    recorded in one transaction at the end of the batch.
    """
    token, message_ids = delivery_claim(limit=limit)
    result = BatchResult(claimed=len(message_ids))
    if not message_ids:
        return result
    relay = relay or relay_from_settings()
    opened_before = relay.connections_opened
    outcomes: list[tuple[Message, list[DeliveryError]]] = []
    messages = list(Message.objects.filter(id__in=message_ids, claim_token=token).defer("raw").order_by("id"))
    deadline = time.monotonic() + settings.DELIVERY_BATCH_DEADLINE
    try:
        relay.open()
        for chunk in _raw_chunks(messages):
            raws = dict(Message.objects.filter(id__in=[message.pk for message in chunk]).values_list("id", "raw"))
            for message in chunk:
                results = _send(relay, message, bytes(raws.pop(message.pk) or b""))
                outcomes.append((message, _outcome(message, results, timezone.now())))
                if time.monotonic() > deadline:
                    raise RelayUnavailable(f"batch deadline of {settings.DELIVERY_BATCH_DEADLINE} s reached")
                if getattr(relay, "connection_lost", False):
                    # A relay that timed out or dropped us would cost every remaining message a
                    # timeout of its own: the rest of the batch is deferred, the batch stays short.
                    raise RelayUnavailable(f"connection lost while sending message {message.pk}")
    except RelayUnavailable as error:
        logger.warning("relay unavailable: %s", error)
        reply = (421, f"relay unavailable: {error}")
        done = {message.pk for message, _ in outcomes}
        untried = [message for message in messages if message.pk not in done]
        for message in untried:
            outcomes.append((message, _outcome(message, dict.fromkeys(_pending(message), reply), timezone.now())))
        _handoffs_return(untried)
    finally:
        relay.close()
    result.connections = relay.connections_opened - opened_before
    _record(token, outcomes, result)
    logger.info(
        "delivery batch: claimed=%s sent=%s deferred=%s failed=%s held=%s",
        result.claimed,
        result.sent,
        result.deferred,
        result.failed,
        result.held,
    )
    return result


def deferred_requeue() -> int:
    """Deferred messages whose back-off has passed go back to the queue."""
    now = timezone.now()
    return Message.objects.filter(status=MessageStatus.DEFERRED, next_attempt_at__lte=now).update(
        status=MessageStatus.QUEUED
    )


def claims_recover(*, older_than: int | None = None) -> int:
    """Claims left by dead workers (older than `older_than` seconds, DELIVERY_CLAIM_TIMEOUT by
    default; 0 when the worker is known dead) go back to the queue, or to the held mail when
    their service is no longer active."""
    if older_than is None:
        older_than = settings.DELIVERY_CLAIM_TIMEOUT
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than)
    stale = Message.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=cutoff)
    recovered = 0
    for hosting_id in stale.order_by().values_list("hosting_id", flat=True).distinct():
        with transaction.atomic():
            state = mail_service_lock_shared(hosting_ids=[hosting_id])[hosting_id]
            now = timezone.now()
            mine = stale.filter(hosting_id=hosting_id)
            if state == State.ACTIVE:
                recovered += mine.update(
                    status=MessageStatus.QUEUED, claim_token=None, claimed_at=None, next_attempt_at=now
                )
            else:
                held = mine.update(
                    status=MessageStatus.HELD,
                    claim_token=None,
                    claimed_at=None,
                    held_at=now,
                    held_until=now + datetime.timedelta(hours=settings.HOLD_HOURS),
                    next_attempt_at=None,
                )
                counter_add(hosting_id=hosting_id, held=held)
                recovered += held
    return recovered
