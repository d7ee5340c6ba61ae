"""Delivery (SPEC §4.2): hand claimed batches to the relay, record each recipient's outcome.

Each recipient gets its own envelope sender, the return path of SPEC §10.1 (`return_path`), so
a later bounce names it; a recipient on the hosting's suppression list (SPEC §10.2) fails at
once, without the relay.

Each message's outcome is committed after the relay's reply and before the next message is
ended (a sent one while the next is on its way: `sent_recorder.SentRecorder`); a worker dying
between the reply and that commit is the only way a message is delivered twice (its claim is
recovered by `retries.claims_recover` once its heartbeat stops).
"""

import dataclasses
import datetime
import functools
import logging
import time
import uuid
from collections import Counter, defaultdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailqueue.bounce_parsing import status_of
from mailqueue.claims import ClaimHeartbeat, delivery_claim
from mailqueue.counters import counter_add
from mailqueue.delivery_ahead import Ahead, message_ready
from mailqueue.delivery_record import messages_save, sent_save, sent_save_possible
from mailqueue.handoff import message_send, pending_of, suppressed_of
from mailqueue.hourly_limit import handoffs_return
from mailqueue.locks import mail_service_lock_shared
from mailqueue.models import DeliveryError, ErrorKind, Message, MessageStatus, RecipientStatus, State, WebhookEvent
from mailqueue.outgoing import Outgoing
from mailqueue.relay import RelayUnavailable, relay_from_settings
from mailqueue.retries import backoff, retries_exhausted
from mailqueue.sent_recorder import SentRecorder
from mailqueue.suppression import suppressions_add
from mailqueue.webhooks import message_data, webhook_events_record, webhook_subscriptions

logger = logging.getLogger(__name__)
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
    # The batch's hostings with webhook endpoints (read once a batch: `webhooks.webhook_subscriptions`).
    subscriptions: dict = dataclasses.field(default_factory=dict, repr=False)


_WEBHOOK_EVENTS = {
    MessageStatus.SENT: WebhookEvent.MESSAGE_SENT,
    MessageStatus.FAILED: WebhookEvent.MESSAGE_FAILED,
    MessageStatus.DEFERRED: WebhookEvent.MESSAGE_DEFERRED,
    MessageStatus.HELD: WebhookEvent.MESSAGE_HELD,
}


def _outcome(
    message: Message,
    results: dict[str, tuple[int, str]],
    now: datetime.datetime,
    *,
    kinds: dict[str, str] | None = None,
) -> list[DeliveryError]:
    """Apply the per-recipient results to `message` (in memory); return new errors.
    `kinds`: recipients failed before the relay, and why (suppressed, SPEC §10.2; spam, §11.1)."""
    kinds = kinds or {}
    errors: list[DeliveryError] = []
    give_up = None  # retries_exhausted, worked out at the first recipient that is not sent
    for recipient in message.recipients:
        if recipient["status"] != RecipientStatus.PENDING or recipient["address"] not in results:
            continue
        code, reply = results[recipient["address"]]
        recipient["code"], recipient["reply"] = code, reply
        message.last_reply = f"{code} {reply}"[:500]
        if 200 <= code < 300:
            recipient["status"] = RecipientStatus.SENT
            continue
        if give_up is None:
            give_up = retries_exhausted(message, now)
        if 500 <= code < 600 or give_up:
            recipient["status"] = RecipientStatus.FAILED
            kind = kinds.get(recipient["address"], ErrorKind.RELAY)
            listed = kind != ErrorKind.RELAY
            text = f"{code} {reply}" if code >= 500 else f"{code} {reply} (retries exhausted)"
            errors.append(
                DeliveryError(
                    hosting_id=message.hosting_id,
                    message_id=message.pk,
                    created_at=now,
                    recipient=recipient["address"],
                    reply=(reply if listed else text)[:500],
                    subject=message.subject,
                    kind=kind,
                    permanent=code >= 500,
                    status="" if listed else status_of(reply),
                )
            )
    return errors


def _record(
    token: uuid.UUID,
    outcomes: list[tuple[Message, list[DeliveryError]]],
    result: BatchResult,
    *,
    never_handed_over: bool = False,
    recorder: SentRecorder | None = None,
) -> None:
    """Store these results in one transaction, only for messages still claimed by `token`
    (each UPDATE checks the claim and locks the row until commit, so a concurrent recovery of
    the claim cannot interleave). `never_handed_over`: these messages never reached the relay,
    their places in the hourly limit are given back in the same transaction.

    A message sent to every recipient with nothing else to record is one statement
    (`delivery_record.sent_save`), written by `recorder` while the next message is sent when
    there is one; any other record waits for it first."""
    if not outcomes:
        return
    now = timezone.now()
    alone = len(outcomes) == 1 and not never_handed_over and (recorder is not None or sent_save_possible())
    if alone and _sent_alone(*outcomes[0], result):
        message = _sent_mark(outcomes[0][0], now)
        if recorder is not None:
            recorder.submit(message, day=recorder.day_of(now))
        elif sent_save(message, token, day=timezone.localdate(now)):
            _sent_counted(message, result)
        return
    if recorder is not None:
        recorder.wait()
    with transaction.atomic():
        states = mail_service_lock_shared(hosting_ids={message.hosting_id for message, _ in outcomes})
        for message, _errors in outcomes:
            pending = any(r["status"] == RecipientStatus.PENDING for r in message.recipients)
            message.claim_token = None
            message.claimed_at = None
            if not pending:
                any_sent = any(r["status"] == RecipientStatus.SENT for r in message.recipients)
                message.status = MessageStatus.SENT if any_sent else MessageStatus.FAILED
                message.completed_at = now
                message.next_attempt_at = None
            elif states[message.hosting_id] != State.ACTIVE:
                message.hold(now)  # blocked while in flight: what is left waits with the rest of the held mail
            else:
                message.status = MessageStatus.DEFERRED
                message.next_attempt_at = now + backoff(message.attempts)
        # Only the messages still claimed by this batch are written (a recovered claim is another's).
        still_ours = messages_save([message for message, _errors in outcomes], token)
        updated: list[Message] = []
        all_errors: list[DeliveryError] = []
        counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for message, errors in outcomes:
            if message.pk not in still_ours:
                continue
            if message.status == MessageStatus.SENT:
                counts[message.hosting_id]["sent"] += 1
                result.sent += 1
            elif message.status == MessageStatus.FAILED:
                result.failed += 1
            elif message.status == MessageStatus.HELD:
                counts[message.hosting_id]["held"] += 1
                result.held += 1
            else:
                result.deferred += 1
            counts[message.hosting_id]["errors"] += len(errors)
            all_errors.extend(errors)
            updated.append(message)
            _log(message)
        DeliveryError.objects.bulk_create(all_errors)
        suppressions_add(all_errors)
        for hosting_id, increments in sorted(counts.items()):  # one lock order: no deadlock between batches
            counter_add(hosting_id=hosting_id, **increments)
        if result.subscriptions:  # the outbox rows commit with the outcome (SPEC §10.4)
            events = [(m.hosting_id, _WEBHOOK_EVENTS[m.status], message_data(m)) for m in updated]
            webhook_events_record(events, subscriptions=result.subscriptions)
        if never_handed_over:
            returned = Counter(message.hosting_id for message, _ in outcomes if message.pk in still_ours)
            handoffs_return(token=token, per_hosting=returned)


def _sent_alone(message: Message, errors: list[DeliveryError], result: BatchResult) -> bool:
    """Whether `message` was sent to every recipient, with nothing else to record (no error, no
    webhook): `delivery_record.sent_save` can write it (where it can run: `sent_save_possible`)."""
    return (
        not errors
        and all(r["status"] == RecipientStatus.SENT for r in message.recipients)
        and not result.subscriptions.get(message.hosting_id)
    )


def _sent_mark(message: Message, now: datetime.datetime) -> Message:
    """`message`, sent to every recipient, marked so in memory."""
    message.claim_token = message.claimed_at = message.next_attempt_at = None
    message.status = MessageStatus.SENT
    message.completed_at = now
    return message


def _sent_counted(message: Message, result: BatchResult) -> None:
    """A sent message's record is written: counted in the batch, logged."""
    result.sent += 1
    _log(message)


def _log(message: Message) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "message %s of hosting %s: %s (%s)",
        message.pk,
        message.hosting_id,
        message.status,
        message.last_reply,
        extra={"hosting_id": message.hosting_id, "message_pk": message.pk, "message_id": message.message_id},
    )


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


def delivery_run_batch(*, limit: int | None = None, relay=None) -> BatchResult:
    """Claim one batch and deliver it over one relay connection. Returns what happened.

    Raw contents are read a few at a time (bounded memory, few queries). Each message's outcome
    is committed before the next message is ended at the relay, so a worker killed mid-batch
    re-delivers at most the message in flight; a heartbeat renews the claim while the batch
    runs, so a dead worker's claim is recovered within DELIVERY_CLAIM_TIMEOUT.
    """
    token, messages = delivery_claim(limit=limit)
    result = BatchResult(claimed=len(messages))
    if not messages:
        return result
    relay = relay or relay_from_settings()
    opened_before = relay.connections_opened
    result.subscriptions = webhook_subscriptions(hosting_ids={message.hosting_id for message in messages})
    deadline = time.monotonic() + settings.DELIVERY_BATCH_DEADLINE
    done: set[int] = set()
    with ClaimHeartbeat(token, expected=lambda: len(messages) - len(done)) as heartbeat:
        _deliver(relay, token, messages, deadline, result, done=done, heartbeat=heartbeat)
    result.connections = relay.connections_opened - opened_before
    logger.info(
        "delivery batch: claimed=%s sent=%s deferred=%s failed=%s held=%s",
        result.claimed,
        result.sent,
        result.deferred,
        result.failed,
        result.held,
    )
    return result


def _deliver(relay, token, messages, deadline: float, result: BatchResult, *, done: set, heartbeat) -> None:
    """Send the claimed `messages` over `relay` (signed, with their trace header: `outgoing`),
    recording each in `done`; on an outage, or once the claim is lost (recovered while this
    worker was stalled), the rest is deferred."""
    outgoing = Outgoing({message.hosting_id for message in messages})
    recorder = (
        SentRecorder(token, on_written=lambda message: _sent_counted(message, result)) if sent_save_possible() else None
    )
    try:
        for chunk in _raw_chunks(messages):
            raws = dict(Message.objects.filter(id__in=[message.pk for message in chunk]).values_list("id", "raw"))
            suppressed = suppressed_of(chunk, timezone.now())
            ready_of = Ahead(functools.partial(message_ready, raws=raws, suppressed=suppressed, outgoing=outgoing))
            for position, message in enumerate(chunk):
                if heartbeat.lost:
                    raise RelayUnavailable("the claim was recovered by another worker")
                ready = ready_of.take(message)
                ready_of.ahead(chunk[position + 1] if position + 1 < len(chunk) else None)
                results, kinds, to_send = ready.results, ready.kinds, ready.to_send
                if to_send:
                    results |= message_send(
                        relay,
                        message,
                        ready.raw,
                        to_send,
                        following=ready_of.following,
                        before_end=functools.partial(_before_end, ready_of, recorder),
                        before_replies=ready_of,
                    )
                done.add(message.pk)  # before its record: the heartbeat never expects it once written
                outcome = _outcome(message, results, timezone.now(), kinds=kinds)
                _record(token, [(message, outcome)], result, never_handed_over=not to_send, recorder=recorder)
                if time.monotonic() > deadline:
                    raise RelayUnavailable(f"batch deadline of {settings.DELIVERY_BATCH_DEADLINE} s reached")
                if getattr(relay, "connection_lost", False):
                    # A relay that timed out or dropped us would cost every remaining message a
                    # timeout of its own: the rest of the batch is deferred, the batch stays short.
                    raise RelayUnavailable(f"connection lost while sending message {message.pk}")
        if recorder is not None:
            recorder.wait()
    except RelayUnavailable as error:
        logger.warning("relay unavailable: %s", error)
        reply = (421, f"relay unavailable: {error}")
        untried = [message for message in messages if message.pk not in done]
        now = timezone.now()
        outcomes = [(message, _outcome(message, dict.fromkeys(pending_of(message), reply), now)) for message in untried]
        _record(token, outcomes, result, never_handed_over=True, recorder=recorder)
    finally:
        relay.close()
        if recorder is not None:
            recorder.close()


def _before_end(ready_of: Ahead, recorder: SentRecorder | None) -> None:
    """Before a message's final dot: the next message made ready (unless the relay's pipelined
    replies gave the time already), while the record of the one before commits; then wait for it."""
    ready_of()
    if recorder is not None:
        recorder.wait()
