"""Line ends and line lengths of a message, as RFC 5322 §2.1.1 and RFC 5321 §2.3.8 define them.

SMTP has one line end, CRLF. A bare CR or a bare LF is read as a line end by some relays and not by
others, so a message carrying `line1\\r.\\rMAIL FROM:…` could end its DATA early on such a relay
and smuggle a second transaction through it. Every door stores messages with CRLF only (through
`message_accept`), and delivery sends with the same rule, so nothing else reaches the relay.
"""

import re

# RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998 characters", CRLF excluded.
MAX_LINE_OCTETS = 998

# Any run of CRs before a LF is one line end ("\r\r\n" is a CRLF written twice by a script's
# library, not a blank line); a CR not followed by a LF is a line end of its own.
_LINE_END = re.compile(rb"\r*\n|\r")
_OVERLONG_LINE = re.compile(rb"[^\r\n]{%d}" % (MAX_LINE_OCTETS + 1))


def line_ends_normalise(raw: bytes) -> bytes:
    """`raw` with every line end written CRLF: bare CR and bare LF become CRLF. Pure; idempotent."""
    return _LINE_END.sub(b"\r\n", raw)


def overlong_line(raw: bytes) -> tuple[int, int] | None:
    """(line number from 1, its length in octets) of the first line of a CRLF-normalised message
    longer than MAX_LINE_OCTETS, or None when every line fits. Pure."""
    match = _OVERLONG_LINE.search(raw)
    if match is None:
        return None
    start = raw.rfind(b"\n", 0, match.start()) + 1
    end = raw.find(b"\r", match.end())
    return raw.count(b"\n", 0, start) + 1, (len(raw) if end < 0 else end) - start
