"""Line ends and line lengths at every door (mailqueue/rfc5322.py through `message_accept`).

The attack: a script writes `line1\\r.\\rMAIL FROM:<…>` in its message. A relay that ends lines on
a bare CR reads the `\\r.\\r` as the end of DATA and the rest as a second transaction of the
platform's own. Here such a relay (`CrRelay`) is real, and messages come in through the real doors.
"""

import re
import smtplib
import socketserver
import threading

import hypothesis
import pytest
from django.test import Client

from api.services import api_credentials_create
from mailqueue import rfc5322
from mailqueue.delivery import delivery_run_batch
from mailqueue.models import Message, MessageStatus
from mailqueue.rfc5322 import headers_fold, line_ends_normalise, overlong_line
from mailqueue.smtpd import SubmissionHandler
from tests.api.conftest import ApiClient
from tests.factories import HostingFactory, MembershipFactory, MessageFactory
from tests.mailqueue.test_sendmail import run as sendmail_run
from tests.mailqueue.test_sendmail import sendmail_url
from tests.support import SubmissionDoor, as_submitted, return_path_of, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = (
    b"Date: Tue, 01 Dec 2026 10:00:00 +0100\r\nMessage-ID: <order@example.net>\r\n"
    b"From: shop@example.net\r\nTo: client@example.org\r\nSubject: Order\r\n\r\n"
)
SMUGGLING = (
    b"line1\r.\rMAIL FROM:<ceo@victim.example>\rRCPT TO:<target@example.org>\rDATA\r"
    b"Subject: smuggled\r\rWire the money.\r.\r"
)


class CrRelay(socketserver.ThreadingTCPServer):
    """A relay that, like some MTAs, takes a bare CR or a bare LF for a line end: it records each
    transaction it accepts (sender, data lines)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _CrRelaySession)
        self.transactions: list[tuple[str, list[bytes]]] = []
        self.wire = bytearray()  # every byte received, for the test to look at
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _CrRelaySession(socketserver.BaseRequestHandler):
    def lines(self):
        pending = b""
        while chunk := self.request.recv(65536):
            self.server.wire += chunk
            pending += chunk
            *lines, pending = re.split(rb"\r\n|\r(?=[^\n])|\n", pending)
            yield from lines

    def handle(self):
        send = self.request.sendall
        send(b"220 cr-relay ESMTP\r\n")
        sender, data, in_data = "", [], False
        for line in self.lines():
            if in_data:
                if line == b".":
                    self.server.transactions.append((sender, data))
                    send(b"250 2.0.0 queued\r\n")
                    in_data, data = False, []
                else:
                    data.append(line[1:] if line.startswith(b".") else line)
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                send(b"250-cr-relay\r\n250 8BITMIME\r\n")
            elif verb == b"MAIL":
                sender = line.decode(errors="replace").partition(":")[2].strip("<> ")
                send(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                send(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                in_data = True
                send(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                send(b"221 bye\r\n")
                return
            elif verb in (b"RSET", b"NOOP"):
                send(b"250 ok\r\n")
            elif line:
                send(b"500 what?\r\n")


@pytest.fixture
def cr_relay(settings):
    relay = CrRelay()
    settings.SMTP_RELAY_URL = relay.url
    settings.SMTP_RELAY_TIMEOUT = 10
    yield relay
    relay.close()


@pytest.fixture
def door():
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(db_threads=2)) as running:
        yield running


@pytest.fixture
def hosting():
    return HostingFactory(service_name="acme-shop.fr")


def smtp_submit(door, hosting, content: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP(door.host, door.port, timeout=10) as client:
        client.login(hosting.service_name, hosting.smtp_password)
        client.mail("shop@example.net")
        client.rcpt("client@example.org")
        return client.data(content)  # bytes: smtplib sends them as they are, bare CRs included


def api_client(hosting) -> ApiClient:
    MembershipFactory(customer=hosting.customer)
    return ApiClient(Client(), api_credentials_create(customer=hosting.customer))


def api_submit(hosting, message: str):
    return api_client(hosting).post(
        f"/hosting/web/{hosting.service_name}/email/messages",
        {"sender": "shop@example.net", "recipients": ["client@example.org"], "message": message},
    )


def test_the_relay_takes_bare_cr_for_a_line_end_so_the_attack_is_real(cr_relay):
    """What the door used to hand over (bare CRs verbatim) gives that relay a second transaction."""
    client = smtplib.SMTP("127.0.0.1", cr_relay.server_address[1], timeout=10)
    client.sendmail("shop@example.net", ["client@example.org"], HEADERS + SMUGGLING + b"\r\nbye\r\n")
    # Open until the relay has read the smuggled commands too (the replies are out of step now).
    arrived = wait_until(lambda: len(cr_relay.transactions) == 2, timeout=20)
    client.close()
    assert arrived
    assert [sender for sender, _data in cr_relay.transactions] == ["shop@example.net", "ceo@victim.example"]


def test_smtp_door_bare_cr_smuggling_never_reaches_the_relay(door, hosting, cr_relay):
    code, reply = smtp_submit(door, hosting, HEADERS + SMUGGLING + b"\r\nbye\r\n")
    assert code == 250, reply
    assert bytes(Message.objects.get().raw) == HEADERS + (
        b"line1\r\n.\r\nMAIL FROM:<ceo@victim.example>\r\nRCPT TO:<target@example.org>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nWire the money.\r\n.\r\nbye\r\n"
    )

    assert delivery_run_batch().sent == 1

    assert [sender for sender, _data in cr_relay.transactions] == [return_path_of(Message.objects.get())]
    lines = cr_relay.transactions[0][1]
    assert lines[lines.index(b"") + 1 :] == [
        *[b"line1", b".", b"MAIL FROM:<ceo@victim.example>", b"RCPT TO:<target@example.org>", b"DATA"],
        *[b"Subject: smuggled", b"", b"Wire the money.", b".", b"bye"],
    ]
    assert b"\r\n..\r\nMAIL FROM" in cr_relay.wire, "the dot line went dot-stuffed, as RFC 5321 wants"
    assert b"\r" not in cr_relay.wire.replace(b"\r\n", b"")


def test_api_bare_cr_and_bare_lf_are_stored_as_crlf(hosting, cr_relay):
    response = api_submit(hosting, "Subject: Order\nX-Mixed: a\r\rbody\r.\rMAIL FROM:<ceo@victim.example>\r\n")
    assert response.status_code == 201, response.json()
    stored = bytes(Message.objects.get().raw)
    assert (
        as_submitted(stored) == b"Subject: Order\r\nX-Mixed: a\r\n\r\nbody\r\n.\r\nMAIL FROM:<ceo@victim.example>\r\n"
    )
    assert delivery_run_batch().sent == 1
    assert [sender for sender, _data in cr_relay.transactions] == [return_path_of(Message.objects.get())]


def test_sendmail_bare_cr_is_stored_as_crlf(door, hosting):
    result = sendmail_run(
        ["-i", "-f", "shop@example.net", "client@example.org"],
        HEADERS.replace(b"\r\n", b"\n") + SMUGGLING + b"\n",
        sendmail_url(door, hosting),
    )
    assert result.returncode == 0, result.stderr
    stored = bytes(Message.objects.get().raw)
    assert b"\r" not in stored.replace(b"\r\n", b"")
    assert b"line1\r\n.\r\nMAIL FROM:<ceo@victim.example>\r\n" in stored


def test_a_message_stored_with_bare_cr_before_the_rule_is_sent_with_crlf(cr_relay):
    """Delivery applies the same rule to what older code stored verbatim."""
    MessageFactory(raw=HEADERS + SMUGGLING + b"\nbye\n", sender="shop@example.net")
    assert delivery_run_batch().sent == 1
    assert [sender for sender, _data in cr_relay.transactions] == [return_path_of(Message.objects.get())]
    assert b"\r" not in bytes(cr_relay.wire).replace(b"\r\n", b"")


LINE_998 = b"a" * 998
LINE_999 = b"b" * 999


def test_smtp_door_refuses_a_line_over_998_octets_with_554(door, hosting):
    code, reply = smtp_submit(door, hosting, HEADERS + LINE_998 + b"\r\n" + LINE_999 + b"\r\n")
    assert (code, reply[:5]) == (554, b"5.6.0")
    assert b"999" in reply and b"998" in reply
    assert not Message.objects.exists()
    code, reply = smtp_submit(door, hosting, HEADERS + LINE_998 + b"\r\n")
    assert code == 250, reply


def test_smtp_door_folds_a_long_header_line_and_refuses_one_it_cannot_fold(door, hosting):
    """PHP's mail() writes every recipient on one To: line: folded, not refused."""
    to = b"To: " + b", ".join(b"reader%d@example.org" % n for n in range(100)) + b"\r\n"
    assert len(to) > 2000
    code, reply = smtp_submit(door, hosting, b"From: shop@example.net\r\n" + to + b"Subject: News\r\n\r\nHi\r\n")
    assert code == 250, reply
    stored = bytes(Message.objects.get().raw)
    assert max(len(line) for line in stored.split(b"\r\n")) <= 998
    assert (
        as_submitted(stored).replace(b"\r\n ", b" ")
        == b"From: shop@example.net\r\n" + to + b"Subject: News\r\n\r\nHi\r\n"
    )
    code, reply = smtp_submit(door, hosting, b"X-Token: " + b"t" * 1000 + b"\r\n\r\nHi\r\n")
    assert (code, reply[:5]) == (554, b"5.6.0")


@pytest.mark.parametrize("start", [b" ", b"\t", b" X-Tag: indented\r\n"], ids=["space", "tab", "indented field"])
def test_smtp_door_refuses_a_message_starting_with_whitespace_with_554(door, hosting, start):
    """Its first line would continue the Date: or Message-ID: added on top: the message's own
    bytes swallowed into the platform's header. Refused with the reason, nothing stored."""
    code, reply = smtp_submit(door, hosting, start + b"\r\n" + HEADERS + b"Hi\r\n")
    assert (code, reply[:5]) == (554, b"5.6.0")
    assert b"pas par une espace ni une tabulation" in reply  # French, the default language
    assert not Message.objects.exists()
    code, reply = smtp_submit(door, hosting, HEADERS + b" \r\nHi\r\n")  # whitespace further down is the body's
    assert code == 250, reply


def test_api_refuses_a_message_starting_with_whitespace_with_400(hosting):
    response = api_submit(hosting, " Subject: x\r\n\r\nHi\r\n")
    assert response.status_code == 400
    assert response.json()["smtpCode"] == 554
    assert "pas par une espace ni une tabulation" in response.json()["message"]
    assert not Message.objects.exists()


def test_api_refuses_a_line_over_998_octets_with_400(hosting):
    response = api_submit(hosting, "Subject: x\r\n\r\n" + "c" * 999 + "\r\n")
    assert response.status_code == 400
    assert response.json()["smtpCode"] == 554
    assert "998" in response.json()["message"]
    assert not Message.objects.exists()
    assert api_submit(hosting, "Subject: x\r\n\r\n" + "c" * 998 + "\n").status_code == 201


def test_sendmail_refuses_a_line_over_998_octets(door, hosting):
    result = sendmail_run(
        ["-i", "-f", "shop@example.net", "client@example.org"],
        b"Subject: x\n\n" + LINE_999 + b"\n",
        sendmail_url(door, hosting),
    )
    assert result.returncode == 65  # EX_DATAERR: sending it again cannot help
    assert b"554 5.6.0" in result.stderr
    assert not Message.objects.exists()


def test_a_normalised_message_is_queued_with_its_stored_size(door, hosting):
    """Normalising changes line ends only: the message is queued like any other."""
    assert smtp_submit(door, hosting, HEADERS + b"body\r\rwith a bare CR\r\n")[0] == 250
    message = Message.objects.get()
    assert message.status == MessageStatus.QUEUED
    assert message.size == len(bytes(message.raw))


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\r\r\nb", b"a\r\nb"),  # a CRLF written twice by a script's library is one line end
        (b"a\n\nb", b"a\r\n\r\nb"),
        (b"a\r\rb", b"a\r\n\r\nb"),
        (b"", b""),
    ],
)
def test_line_ends_normalise(raw, normalised):
    assert line_ends_normalise(raw) == normalised
    assert line_ends_normalise(normalised) == normalised


def test_overlong_line_names_the_first_line_over_998_octets():
    assert overlong_line(b"x" * 998 + b"\r\n" + b"y" * 998) is None
    assert overlong_line(b"x\r\n" + b"y" * 998 + b"\r\n" + b"z" * 1200 + b"\r\n" + b"w" * 5000) == (3, 1200)
    assert overlong_line(b"q" * 999) == (1, 999)


def test_headers_fold_folds_at_whitespace_and_leaves_the_body_alone():
    long_header = b"To: " + b", ".join(b"r%d@example.org" % n for n in range(200))
    body_line = b"b" * 1500
    folded = headers_fold(long_header + b"\r\nSubject: x\r\n\r\n" + body_line + b"\r\n")
    head, _blank, body = folded.partition(b"\r\n\r\n")
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert head.replace(b"\r\n ", b" ") == long_header + b"\r\nSubject: x"
    assert body == body_line + b"\r\n", "a body line is not touched: it is refused"
    unbreakable = b"X-Token: " + b"t" * 1200 + b"\r\n\r\n"
    assert headers_fold(unbreakable) == unbreakable
    assert headers_fold(folded) == folded


_REFERENCE_OVERLONG = re.compile(rb"[^\r\n]{%d}" % (rfc5322.MAX_LINE_OCTETS + 1))


def _reference_overlong_line(raw: bytes):
    """The rule as a regex (what overlong_line computed before it was made fast)."""
    match = _REFERENCE_OVERLONG.search(raw)
    if match is None:
        return None
    start = raw.rfind(b"\n", 0, match.start()) + 1
    end = raw.find(b"\r", match.end())
    return raw.count(b"\n", 0, start) + 1, (len(raw) if end < 0 else end) - start


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(
    hypothesis.strategies.lists(
        hypothesis.strategies.integers(min_value=0, max_value=1100).map(lambda n: b"x" * n), max_size=12
    )
)
def test_the_fast_overlong_line_agrees_with_the_rule(lines):
    raw = b"\r\n".join(lines)
    assert rfc5322.overlong_line(raw) == _reference_overlong_line(raw)
