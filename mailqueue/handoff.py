"""Handing one message to the relay (SPEC §4.2, §10.1, §10.2): one SMTP transaction per
recipient, each with its own return path, and which recipients are suppressed, to be failed
without the relay."""

import datetime
import functools
import logging
from collections import defaultdict

from django.conf import settings

from hosting.models import Hosting
from mailqueue.delivery_record import RecordFailed
from mailqueue.models import Message, RecipientStatus
from mailqueue.relay import CONNECTION_FAILURE_CODE, RelayUnavailable
from mailqueue.return_path import return_path_for
from mailqueue.suppression import suppressed_reply, suppressions_active

logger = logging.getLogger("mailqueue.delivery")


def pending_of(message: Message) -> list[str]:
    """The recipients still to deliver."""
    return [r["address"] for r in message.recipients if r["status"] == RecipientStatus.PENDING]


def message_send(
    relay, message: Message, raw: bytes, recipients: list[str], *, following=None, **hooks
) -> dict[str, tuple[int, str]]:
    """Hand one message to the relay, one transaction per recipient with its own return path.
    An unexpected error defers this message only: the rest of the batch goes on, and what was
    already delivered is still recorded. The relay lost midway: the recipients not tried get a
    421 and `relay.connection_lost` stops the batch after this message is recorded.
    `hooks`: the relay's `before_end` (run before the relay is given the end of the message;
    its RecordFailed is raised as it is, the message never ended) and `before_replies`
    (must not raise). `following()`: the transaction that
    follows this message's last one, as `relay.send`'s `next_transaction`."""
    index = _positions(message)
    results: dict[str, tuple[int, str]] = {}
    for position, address in enumerate(recipients):
        if getattr(relay, "connection_lost", False):
            break
        envelope = return_path_for(hosting_id=message.hosting_id, message_pk=message.pk, index=index[address])
        if position + 1 < len(recipients):
            next_transaction = functools.partial(transaction_of, message, recipients[position + 1], raw)
        else:
            next_transaction = following
        try:
            results |= relay.send(
                sender=envelope, recipients=[address], raw=raw, next_transaction=next_transaction, **hooks
            )
        except RecordFailed:
            raise
        except RelayUnavailable as error:
            if not results:
                raise
            relay.connection_lost = True
            untried = (CONNECTION_FAILURE_CODE, f"relay unavailable: {error}"[:200])
            return results | dict.fromkeys([a for a in recipients if a not in results], untried)
        except Exception as error:
            logger.exception("relay error on message %s", message.pk)
            relay.close()  # its session is in an unknown state; the next message reopens it
            failure = (451, f"4.3.0 local error while sending: {error}"[:200])
            return results | dict.fromkeys([a for a in recipients if a not in results], failure)
    lost = (CONNECTION_FAILURE_CODE, "not sent: the connection to the relay was lost")
    return results | dict.fromkeys([a for a in recipients if a not in results], lost)


def transaction_of(message: Message, address: str, raw: bytes) -> tuple[str, list[str], bytes]:
    """The relay transaction of `message` to `address`: (its return path, [address], raw)."""
    index = _positions(message)[address]
    return return_path_for(hosting_id=message.hosting_id, message_pk=message.pk, index=index), [address], raw


def _positions(message: Message) -> dict[str, int]:
    """Each recipient's place in `message.recipients`, as its return path names it."""
    return {entry["address"]: position for position, entry in enumerate(message.recipients)}


def suppressed_of(chunk: list[Message], now: datetime.datetime) -> dict[int, dict[str, tuple[int, str]]]:
    """Per message of `chunk`, its pending recipients on the suppression list, with the reply
    each is failed with (in the customer's language): one query, two when any is listed."""
    listed = suppressions_active(
        pairs=[(message.hosting_id, address) for message in chunk for address in pending_of(message)], now=now
    )
    if not listed:
        return {}
    languages = dict(Hosting.objects.filter(pk__in={key[0] for key in listed}).values_list("pk", "customer__language"))
    found: dict[int, dict[str, tuple[int, str]]] = defaultdict(dict)
    for message in chunk:
        for address in pending_of(message):
            entry = listed.get((message.hosting_id, address.strip().lower()))
            if entry is not None:
                reply = suppressed_reply(entry, language=languages[message.hosting_id] or settings.LANGUAGE_CODE)
                found[message.pk][address] = (550, reply)
    return found
