"""Reading bounces (mailqueue/bounce_parsing.py) on samples written after what Postfix, Exim, qmail,
Gmail and Exchange Online send (tests/fixtures/bounces), and on broken, truncated and random bytes:
`bounce_parse` says what failed, for whom and why, and never raises."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailqueue.bounce_parsing import DIAGNOSTIC_CHARS, BounceReport, RecipientReport, bounce_parse, status_of
from tests.bounce_samples import BOUNCE_SAMPLES, FIXTURES, bounce_sample

RETURN_PATH = "bounce+12-345-0-abcdefghijklmnop@bounces.portal.localhost"
RECIPIENT = "m.durand+commandes@client-exemple.fr"
# flufl.bounce's heuristic detectors (SimpleMatch, SimpleWarning) drop an address whose domain has a
# hyphen: the prose samples that only they read get one without.
PROSE_RECIPIENT = "m.durand+commandes@exemple.fr"
RECIPIENT_OF = {"exim-delayed": PROSE_RECIPIENT}
MESSAGE_ID = "<20250114092343.a1b2c3@acme-shop.fr>"
KINDS = {"dsn", "complaint", "bounce", "unrecognised"}
ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}

# name: kind, action, status, permanent, words of the server the diagnostic keeps, the bounce's subject
FAILURES = {
    "postfix-hard": (
        "dsn",
        "failed",
        "5.1.1",
        True,
        "550 5.1.1 <{recipient}>: Recipient address rejected: User unknown in virtual mailbox table",
        "Undelivered Mail Returned to Sender",
    ),
    "postfix-delayed": (
        "dsn",
        "delayed",
        "4.4.1",
        False,
        "connect to mx.example.org[203.0.113.25]:25: Connection timed out",
        "Delayed Mail (still being retried)",
    ),
    "postfix-soft-failed": (
        "dsn",
        "failed",
        "4.4.7",
        False,
        "Connection timed out",
        "Undelivered Mail Returned to Sender",
    ),
    "exim-hard": (
        "bounce",
        "failed",
        "5.1.1",
        True,
        "550 5.1.1 <{recipient}>: Recipient address rejected: User unknown in local recipient table",
        "Mail delivery failed: returning message to sender",
    ),
    "exim-delayed": (
        "bounce",
        "delayed",  # flufl.bounce's detectors call it permanent
        "4.2.0",
        False,
        "451 4.2.0 <{recipient}>: Mailbox temporarily unavailable, try again later",
        "Warning: message 1tXkQ2-0004Fw-Ud delayed 24 hours",
    ),
    "exim-dsn": (
        "dsn",
        "failed",
        "5.1.1",  # the report's Status is Exim's generic 5.0.0; the server's reply says 5.1.1
        True,
        "550 5.1.1 <{recipient}>: Recipient address rejected: User unknown in local recipient table",
        "Mail delivery failed: returning message to sender",
    ),
    "qmail-hard": (
        "bounce",
        "failed",
        "5.1.1",
        True,
        "Remote host said: 550 5.1.1 <{recipient}>... No such user here",
        "failure notice",
    ),
    "gmail-hard": (
        "dsn",
        "failed",
        "5.1.1",
        True,
        "The email account that you tried to reach does not exist.",
        "Delivery Status Notification (Failure)",
    ),
    "microsoft-hard": (
        "dsn",
        "failed",
        "5.1.10",
        True,
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "Undeliverable: Votre commande",
    ),
}

PROPERTY = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def sample(name: str, **overrides: str) -> bytes:
    recipient = RECIPIENT_OF.get(name, RECIPIENT)
    return bounce_sample(
        name, **{"return_path": RETURN_PATH, "recipient": recipient, "message_id": MESSAGE_ID, **overrides}
    )


def assert_well_formed(report: BounceReport) -> None:
    """What any caller may rely on, whatever came in."""
    assert isinstance(report, BounceReport)
    assert report.kind in KINDS
    assert isinstance(report.subject, str) and len(report.subject) <= 255
    assert (report.kind in {"dsn", "bounce"}) == bool(report.recipients)
    for recipient in report.recipients:
        assert isinstance(recipient, RecipientReport)
        assert recipient.address == recipient.address.strip().strip("<>")
        if report.kind == "bounce":  # a detector's find; a report may lack its Final-Recipient
            assert "@" in recipient.address
        assert recipient.action in ACTIONS
        assert recipient.status == "" or status_of(recipient.status) == recipient.status
        assert len(recipient.diagnostic) <= DIAGNOSTIC_CHARS
    if report.kind != "complaint":
        assert report.feedback_type == report.reporter == report.complainant == ""


def test_every_sample_is_listed_and_has_its_placeholders():
    assert sorted(BOUNCE_SAMPLES) == sorted(path.stem for path in FIXTURES.glob("*.eml"))
    for name in BOUNCE_SAMPLES:
        raw = sample(name)
        assert b"%%" not in raw, name
        assert RETURN_PATH.encode() in raw, name  # every sample is addressed to (or names) the return path


def test_bounce_sample_substitutes_and_keeps_line_endings():
    raw = bounce_sample("microsoft-hard", return_path="r@b.example", recipient="x@y.example", subject="Hé")
    assert raw.count(b"\r\n") == raw.count(b"\n")
    assert b"Subject: Undeliverable: H\xc3\xa9\r\n" in raw
    assert b"To: <r@b.example>\r\n" in raw
    assert b"In-Reply-To: <original@acme-shop.fr>\r\n" in raw
    assert b"\r\n" not in bounce_sample("postfix-hard", return_path="r@b.example", recipient="x@y.example")


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_bounce_names_the_failed_recipient_and_why(name):
    kind, action, status, permanent, words, subject = FAILURES[name]
    recipient_address = RECIPIENT_OF.get(name, RECIPIENT)
    report = bounce_parse(sample(name))
    assert_well_formed(report)
    assert report.kind == kind
    assert report.subject == subject
    assert len(report.recipients) == 1  # not the return path, nor the sender, nor the Remote-MTA
    recipient = report.worst
    assert recipient == report.recipients[0]
    assert recipient.address == recipient_address
    assert recipient.action == action
    assert recipient.status == status
    assert recipient.permanent is permanent
    assert words.format(recipient=recipient_address) in recipient.diagnostic


@pytest.mark.xfail(strict=True, reason="flufl.bounce 6 SimpleMatch: an address must match [a-z0-9._]+ after the @")
def test_a_prose_warning_to_a_hyphenated_domain():
    report = bounce_parse(sample("exim-delayed", recipient=RECIPIENT))
    assert [(r.address, r.action) for r in report.recipients] == [(RECIPIENT, "delayed")]


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_line_endings_do_not_change_the_report(name):
    raw = sample(name)
    lf = raw.replace(b"\r\n", b"\n")
    assert bounce_parse(lf) == bounce_parse(lf.replace(b"\n", b"\r\n")) == bounce_parse(raw)


def test_a_prose_bounce_keeps_the_address_paragraph_not_the_returned_copy():
    diagnostic = bounce_parse(sample("exim-hard")).worst.diagnostic
    assert diagnostic.startswith(f"{RECIPIENT} SMTP error from remote mail server after RCPT TO:<{RECIPIENT}>:")
    assert "This is a copy of the message" not in diagnostic
    assert "Bonjour" not in diagnostic
    qmail = bounce_parse(sample("qmail-hard")).worst.diagnostic
    assert qmail.startswith(f"<{RECIPIENT}>: 198.51.100.77 does not like recipient.")
    assert qmail.endswith("Giving up on 198.51.100.77.")


def test_a_prose_bounce_is_a_warning_by_what_it_says_before_the_addresses():
    hard = sample("exim-hard").replace(b"Bonjour,", b"Your parcel has been delayed; delivery will be retried.")
    assert bounce_parse(hard).worst.action == "failed"  # words in the returned copy do not count
    warning = sample("exim-delayed")
    assert bounce_parse(warning).worst.action == "delayed"


@pytest.mark.parametrize("ip", ["5.135.12.40", "4.12.7.9", "192.0.2.5"])
def test_an_ip_address_before_the_reply_is_not_a_status(ip):
    raw = sample("exim-hard").replace(b"198.51.100.40", ip.encode())
    recipient = bounce_parse(raw).worst
    assert ip in recipient.diagnostic
    assert recipient.status == "5.1.1"
    assert recipient.permanent


def test_a_generic_status_is_refined_only_by_a_reply_of_the_same_class():
    exim = sample("exim-dsn")
    other_class = exim.replace(b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: smtp; 451 4.3.0")
    assert bounce_parse(other_class).worst.status == "5.0.0"
    no_code = exim.replace(b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: smtp; 550")
    assert bounce_parse(no_code).worst.status == "5.0.0"
    # A precise Status is the report's word, whatever the reply says.
    postfix = sample("postfix-hard").replace(b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: smtp; 550 5.7.1")
    assert bounce_parse(postfix).worst.status == "5.1.1"


def test_a_report_without_status_takes_the_reply_code():
    raw = sample("postfix-hard").replace(b"Status: 5.1.1\n", b"")
    assert b"Status:" not in raw
    recipient = bounce_parse(raw).worst
    assert (recipient.action, recipient.status, recipient.permanent) == ("failed", "5.1.1", True)


def test_with_several_recipients_the_failure_is_the_worst():
    delayed = b"Final-Recipient: rfc822; other@example.net\nAction: delayed\nStatus: 4.2.2\n\n"
    raw = sample("postfix-hard").replace(
        b"Final-Recipient: rfc822; " + RECIPIENT.encode(), delayed + b"Final-Recipient: rfc822; " + RECIPIENT.encode()
    )
    report = bounce_parse(raw)
    assert [(r.address, r.action, r.status) for r in report.recipients] == [
        ("other@example.net", "delayed", "4.2.2"),
        (RECIPIENT, "failed", "5.1.1"),
    ]
    assert report.worst.address == RECIPIENT


def test_a_complaint_names_its_type_its_generator_and_the_complainant():
    report = bounce_parse(sample("complaint-arf"))
    assert_well_formed(report)
    assert report.kind == "complaint"
    assert (report.feedback_type, report.reporter, report.complainant) == ("abuse", "SomeGenerator/1.0", RECIPIENT)
    assert report.recipients == () and report.worst is None
    assert report.subject == "FW: Votre commande"


def test_a_complaint_with_the_recipient_redacted_or_another_type():
    raw = sample("complaint-arf")
    redacted = raw.replace(f"Original-Rcpt-To: <{RECIPIENT}>\n".encode(), b"")
    assert bounce_parse(redacted).complainant == ""
    fraud = bounce_parse(raw.replace(b"Feedback-Type: abuse", b"Feedback-Type: Fraud"))
    assert (fraud.kind, fraud.feedback_type) == ("complaint", "fraud")


def test_an_out_of_office_reply_is_not_a_bounce():
    report = bounce_parse(sample("auto-reply"))
    assert report == BounceReport(kind="unrecognised", subject="Auto: Votre commande")


def test_garbage_is_unrecognised():
    report = bounce_parse(sample("garbage"))
    assert_well_formed(report)
    assert report.kind == "unrecognised"  # not the X-Failed-Recipients debris as an "address"


@pytest.mark.parametrize("name", BOUNCE_SAMPLES)
def test_a_truncated_sample_never_raises(name):
    raw = sample(name)
    cuts = sorted({len(raw) * step // 40 for step in range(40)} | {i for i, byte in enumerate(raw) if byte == 0x0A})
    for cut in cuts:
        assert_well_formed(bounce_parse(raw[:cut]))


@pytest.mark.parametrize("name", sorted(set(FAILURES) - {"exim-delayed"}))  # a warning returns no copy
def test_a_sample_cut_in_the_returned_copy_still_reports(name):
    raw = sample(name)
    cut = raw.rindex(MESSAGE_ID.encode()) + len(MESSAGE_ID)  # the last one is the returned copy's
    assert bounce_parse(raw[:cut]).recipients == bounce_parse(raw).recipients


@PROPERTY
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw):
    assert_well_formed(bounce_parse(raw))


PIECES = [
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b"--",
    b"--b",
    b"--b--",
    b"MIME-Version: 1.0\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
    b'Content-Type: multipart/mixed; boundary="b"\n',
    b"Content-Type: message/delivery-status\n",
    b"Content-Type: message/feedback-report\n",
    b"Content-Type: message/rfc822\n",
    b"Content-Type: text/plain; charset=",
    b"utf-8",
    b"x-unknown",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Description: notification\n",
    b"Final-Recipient: rfc822; ",
    b"Original-Recipient: ",
    b"Action: failed\n",
    b"Action: ",
    b"Status: 5.1.1\n",
    b"Diagnostic-Code: smtp; 550 5.1.1 ",
    b"Original-Rcpt-To: ",
    b"Feedback-Type: ",
    b"X-Failed-Recipients: ",
    b"Subject: =?utf-8?b?",
    b"=?iso-8859-1?q?=E9?=",
    b"?=",
    b"user@example.org",
    b"<a@b>",
    b"<",
    b">",
    b'"',
    b"@",
    b"=",
    b"=ZZ",
    b"\xff\xfe",
    b"\xc3(",
    b"\x00",
    b"Hi. This is the qmail-send program at x.\n\n",
    b"A message that you sent could not be delivered\n",
    b"This message was created automatically by mail delivery software.\n",
    b"The following addresses had permanent fatal errors\n",
    b"--- Below this line is a copy of the message.\n",
]


@PROPERTY
@given(st.lists(st.sampled_from(PIECES), max_size=80))
def test_messages_made_of_mail_pieces_never_raise(pieces):
    assert_well_formed(bounce_parse(b"".join(pieces)))


@PROPERTY
@given(
    name=st.sampled_from(BOUNCE_SAMPLES),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 40), st.binary(max_size=40)), min_size=1, max_size=6),
)
def test_damaged_samples_never_raise(name, edits):
    raw = bytearray(sample(name))
    for where, length, replacement in edits:
        start = int(where * len(raw))
        raw[start : start + length] = replacement
    assert_well_formed(bounce_parse(bytes(raw)))


def test_status_of():
    assert status_of("smtp; 550 5.1.1 <a@b>: User unknown") == "5.1.1"
    assert status_of("550-5.7.26 Unauthenticated email") == "5.7.26"
    assert status_of("smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound") == "5.1.10"
    assert status_of("Sorry, no mailbox here by that name. (#5.1.1)") == "5.1.1"
    assert status_of("Status: 4.4.7.") == "4.4.7"
    assert status_of("host mx.example.org [5.135.12.40]: 550 5.2.2 Mailbox full") == "5.2.2"
    assert status_of("connect to 10.4.12.7:25: Connection refused") == ""
    assert status_of("version 2.5.1.3") == ""
    assert status_of("3.1.1 is no class") == ""
    assert status_of("") == status_of(None) == ""
