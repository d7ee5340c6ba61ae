"""The relay client's MAIL and RCPT: a plain address is quoted without smtplib's parsing (its
email.utils.parseaddr was ~8 % of a delivery's CPU), and says what smtplib would have said."""

import smtplib

from hypothesis import given
from hypothesis import strategies as st

from mailqueue.relay import SmtpRelay, _envelope_quoted
from tests.mailqueue.test_delivery import LiveRelay

TRICKY = [
    "",
    "<>",
    "a@example.org",
    "first.last+tag@example.org",
    "user@[192.0.2.1]",
    '"two words"@example.org',
    "Name <a@example.org>",
    "a@b@example.org",
    "weird(comment)@example.org",
]


@given(st.emails() | st.sampled_from(TRICKY))
def test_an_envelope_address_is_quoted_as_smtplib_quotes_it(address):
    assert _envelope_quoted(address) == smtplib.quoteaddr(address)


def test_the_relay_receives_the_envelope_as_sent_the_null_sender_included():
    raw = b"From: a@example.org\r\nSubject: envelope\r\n\r\nHello.\r\n"
    with LiveRelay() as live:
        relay = SmtpRelay(live.url, timeout=10)
        try:
            first = relay.send(sender="bounce+x@example.net", recipients=["b@example.org", "c@example.org"], raw=raw)
            second = relay.send(sender="", recipients=["d@example.org"], raw=raw)
        finally:
            relay.close()
        received = [(item.mail_from, item.rcpt_tos) for item in live.received]
    assert {code for code, _reply in [*first.values(), *second.values()]} == {250}
    assert received == [("bounce+x@example.net", ["b@example.org", "c@example.org"]), ("<>", ["d@example.org"])]
