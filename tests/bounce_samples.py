"""Sample bounces (tests/fixtures/bounces/*.eml), written by hand after the formats the servers
document and send, as templates: `bounce_sample` fills in the delivery they report on.

Placeholders: %%RETURN_PATH%% (the envelope sender of the original delivery, to which the bounce
is sent), %%RECIPIENT%% (the original recipient), %%MESSAGE_ID%% (the original Message-ID, with
its angle brackets), %%SUBJECT%% (the original subject)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bounces"

BOUNCE_SAMPLES = [
    "postfix-hard",  # Postfix, RFC 3464 report: 5.1.1 user unknown at the next hop (headers returned)
    "postfix-delayed",  # Postfix "Delayed Mail (still being retried)": Action delayed, 4.4.1
    "postfix-soft-failed",  # Postfix after its queue lifetime: Action failed, 4.4.7 (message returned)
    "exim-hard",  # Exim < 4.8x, prose only: X-Failed-Recipients, the SMTP error in the text
    "exim-delayed",  # Exim < 4.8x prose warning "Warning: message … delayed 24 hours" (its default)
    "exim-dsn",  # Exim 4.9x, RFC 3464 report whose Status is the generic 5.0.0
    "qmail-hard",  # qmail-send's QSBMF prose bounce ("Hi. This is the qmail-send program…")
    "gmail-hard",  # Gmail / Google Workspace relay: report with text+HTML, folded 550-5.1.1 reply
    "microsoft-hard",  # Exchange Online NDR "Undeliverable: …", 5.1.10 RecipientNotFound (CRLF)
    "complaint-arf",  # RFC 5965 feedback report (abuse), to the feedback-loop address
    "auto-reply",  # Dovecot Pigeonhole vacation reply: not a bounce
    "garbage",  # broken MIME, bad encodings and charsets, 8-bit and NUL bytes
]


def bounce_sample(
    name: str,
    *,
    return_path: str,
    recipient: str,
    message_id: str = "<original@acme-shop.fr>",
    subject: str = "Votre commande",
) -> bytes:
    """The raw bytes of sample `name` reporting on that delivery; line endings are the file's
    (LF, or CRLF for microsoft-hard). The values go in as UTF-8, unencoded: give ASCII ones to
    get what the servers would send."""
    raw = (FIXTURES / f"{name}.eml").read_bytes()
    for placeholder, value in (
        (b"%%RETURN_PATH%%", return_path),
        (b"%%RECIPIENT%%", recipient),
        (b"%%MESSAGE_ID%%", message_id),
        (b"%%SUBJECT%%", subject),
    ):
        raw = raw.replace(placeholder, value.encode("utf-8"))
    return raw
