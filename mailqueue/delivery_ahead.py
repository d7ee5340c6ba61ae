"""Each message of a delivery batch made ready for the relay (its recipients on the suppression
list set aside, its outgoing bytes signed, its spam verdict), the next one while the relay reads
the commands of this one (`relay.send`'s `before_replies`, with PIPELINING) or its content (before
its final dot, while the record of the message before commits): that work, the DKIM signature
above all, overlaps the relay's instead of following it (SPEC §12), never between a message's end
and its record, and the next message's first transaction is known in time for its commands to go
out with this one's content (`Ahead.following`, `relay_pipelining`)."""

import dataclasses

from mailqueue.handoff import pending_of, transaction_of
from mailqueue.models import ErrorKind, Message
from mailqueue.outgoing import Outgoing
from mailqueue.spam_policy import outbound_scan


@dataclasses.dataclass
class Ready:
    """One message ready for the relay: `to_send` gets `raw`; `results` and `kinds` hold the
    recipients failed before the relay (suppressed, spam) and why."""

    to_send: list[str]
    raw: bytes | None
    results: dict[str, tuple[int, str]]
    kinds: dict[str, str]


def message_ready(message: Message, *, raws: dict, suppressed: dict, outgoing: Outgoing) -> Ready:
    """`message` made ready: `raws` its stored content by id (taken from it), `suppressed` its
    suppressed recipients with their replies (`handoff.suppressed_of`)."""
    results = dict(suppressed.get(message.pk, {}))
    kinds = dict.fromkeys(results, ErrorKind.SUPPRESSED)
    to_send = [address for address in pending_of(message) if address not in results]
    raw = bytes(raws.pop(message.pk, None) or b"")
    if not to_send:  # the relay is contacted (and opened) only for what it must carry
        return Ready([], None, results, kinds)
    raw = outgoing.bytes_of(message, raw)
    refused = outbound_scan(message, raw, to_send, language=outgoing.language_of(message))
    if refused is not None:  # spam, or no verdict: kept from the relay
        kinds |= {address: ErrorKind.SPAM for address, (code, _text) in refused.items() if code >= 500}
        return Ready([], None, results | refused, kinds)
    return Ready(to_send, raw, results, kinds)


class Ahead:
    """Messages made ready one ahead: `take(message)` gives `message` ready (made now unless it
    was made ahead); `ahead(next_message)` names the one to make while the relay works, and
    `__call__` (a hook of the relay's) makes it. An error making it ahead is raised by `take`
    of that message, where it would have been raised without the overlap."""

    def __init__(self, make):
        self._make = make
        self._next: Message | None = None
        self._made: dict[int, tuple[Ready | None, Exception | None]] = {}

    def ahead(self, message: Message | None) -> None:
        self._next = message

    def __call__(self) -> None:
        message = self._next
        if message is None or message.pk in self._made:
            return
        try:
            self._made[message.pk] = (self._make(message), None)
        except Exception as error:  # raised by `take`, in the delivery's order
            self._made[message.pk] = (None, error)

    def following(self) -> tuple[str, list[str], bytes] | None:
        """The first relay transaction of the next message, when it is made ready and goes to the
        relay: its commands may go out ahead (`relay_pipelining`)."""
        message = self._next
        ready, error = self._made.get(message.pk, (None, None)) if message is not None else (None, None)
        if ready is None or error is not None or not ready.to_send:
            return None
        return transaction_of(message, ready.to_send[0], ready.raw)

    def take(self, message: Message) -> Ready:
        made = self._made.pop(message.pk, None)
        if made is None:
            return self._make(message)
        ready, error = made
        if error is not None:
            raise error
        return ready
