"""Where a delivery's time goes, message by message (`bench/delivery.py --timeline`).

The delivering thread's steps are stamped as they happen (each write to the relay, each reply
read, each record sent and waited for, each claim) by wrappers put around the relay client, the
record writer and the claim for one run. The time between two consecutive steps is charged to
that pair ("dot sent → reply read": the relay working on the end of a message, this thread
waiting), and each pair's total is shown per message delivered: the column adds up to the
run's wall time per message. The wrappers cost a few microseconds a step: rates measured with
--timeline are a little lower than without.
"""

import collections
import contextlib
import threading
import time

_WRITES = {b".\r\n": "dot sent", b"mail": "commands sent", b"MAIL": "commands sent"}


class Timeline:
    def __init__(self):
        self.steps: list[tuple[str, float]] = []
        self._thread = threading.get_ident()

    def stamp(self, step: str) -> None:
        if threading.get_ident() == self._thread:
            self.steps.append((step, time.perf_counter()))

    @contextlib.contextmanager
    def recording(self):
        """The wrappers in place for the `with` block (this thread's steps only)."""
        from mailqueue import delivery, relay, sent_recorder

        originals = []

        def around(owner, name, before=None, after=None):
            original = getattr(owner, name)
            originals.append((owner, name, original))

            def wrapper(*args, **kwargs):
                if before:
                    self.stamp(before(*args) if callable(before) else before)
                try:
                    return original(*args, **kwargs)
                finally:
                    if after:
                        self.stamp(after)

            setattr(owner, name, wrapper)

        def write_kind(_connection, data) -> str:
            head = data[:4] if isinstance(data, bytes) else data[:4].encode()
            return next((step for start, step in _WRITES.items() if head.startswith(start)), "content sent")

        around(relay._SMTP, "send", before=write_kind)
        around(relay._SMTP, "getreply", after="reply read")
        around(sent_recorder.SentRecorder, "submit", after="record sent")
        around(sent_recorder.SentRecorder, "_outcome", before="record wait", after="record committed")
        around(delivery, "delivery_claim", before="claim", after="claimed")
        # A batch's reads after its claim (whose UPDATE hands back the messages' rows).
        around(delivery, "webhook_subscriptions", before="subscriptions", after="subscriptions read")
        around(delivery, "Outgoing", before="names, keys", after="names, keys read")
        around(delivery, "suppressed_of", before="suppressions", after="suppressions read")
        around(relay.SmtpRelay, "open", before="relay open", after="relay opened")
        try:
            yield self
        finally:
            for owner, name, original in reversed(originals):
                setattr(owner, name, original)

    def report(self, messages: int) -> list[str]:
        """Lines: each pair of consecutive steps, its total per message delivered, most first."""
        totals: dict[tuple[str, str], float] = collections.defaultdict(float)
        counts: collections.Counter = collections.Counter()
        for (first, started), (second, ended) in zip(self.steps, self.steps[1:], strict=False):
            totals[first, second] += ended - started
            counts[first, second] += 1
        wall = sum(totals.values())
        lines = [f"{'from':>18} → {'to':<18}{'times':>7}{'ms/msg':>9}{'share':>7}"]
        for (first, second), total in sorted(totals.items(), key=lambda item: -item[1]):
            if total / wall < 0.002:
                continue
            share = 100 * total / wall
            lines.append(
                f"{first:>18} → {second:<18}{counts[first, second]:>7}{1000 * total / messages:>9.3f}{share:>6.1f}%"
            )
        lines.append(f"{'all steps':>39}{'':>7}{1000 * wall / messages:>9.3f}")
        return lines
