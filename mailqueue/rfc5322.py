"""Line ends and line lengths of a message, as RFC 5322 §2.1.1 and RFC 5321 §2.3.8 define them.

SMTP has one line end, CRLF. A bare CR or a bare LF is read as a line end by some relays and not by
others, so a message carrying `line1\\r.\\rMAIL FROM:…` could end its DATA early on such a relay
and smuggle a second transaction through it. Every door stores messages normalised (through
`message_accept`), and delivery sends with the same rule, so nothing else reaches the relay.

Lines are at most 998 octets. A header line over that is folded at its whitespace (RFC 5322
§2.2.3: the same header to any reader), as PHP's mail() writes `To:` with every recipient on one
line; a line that cannot be folded (a body line, a header without whitespace) is refused.
"""

import re

# RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998 characters", CRLF excluded.
MAX_LINE_OCTETS = 998

# Any run of CRs before a LF is one line end ("\r\r\n" is a CRLF written twice by a script's
# library, not a blank line); a CR not followed by a LF is a line end of its own.
_LINE_END = re.compile(rb"\r*\n|\r")


def _overlong_index(raw: bytes) -> int | None:
    """The index (from 0) of the first CRLF-separated line of `raw` over MAX_LINE_OCTETS, or None.
    A split and a max run at C speed: a regex tried at every offset cost ~10 ms a 100 KB message."""
    if len(raw) <= MAX_LINE_OCTETS:
        return None
    lines = raw.split(b"\r\n")
    if max(map(len, lines)) <= MAX_LINE_OCTETS:
        return None
    return next(index for index, line in enumerate(lines) if len(line) > MAX_LINE_OCTETS)


def line_ends_normalise(raw: bytes) -> bytes:
    """`raw` with every line end written CRLF: bare CR and bare LF become CRLF. Pure; idempotent."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\r") == crlf and raw.count(b"\n") == crlf:
        return raw  # every CR is followed by a LF and every LF preceded by a CR: three C-speed counts
    return _LINE_END.sub(b"\r\n", raw)


def headers_fold(raw: bytes) -> bytes:
    """`raw` (CRLF line ends) with each header line over MAX_LINE_OCTETS folded before whitespace
    into pieces that fit, as far as its whitespace allows; the body is left alone. Pure."""
    if raw.startswith(b"\r\n"):  # no header section
        return raw
    end = raw.find(b"\r\n\r\n")
    head, body = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 2 :])
    if _overlong_index(head) is None:
        return raw
    return b"\r\n".join(_line_fold(line) for line in head.split(b"\r\n")) + body


def _line_fold(line: bytes) -> bytes:
    """`line` folded into pieces of at most MAX_LINE_OCTETS, or as it was if it cannot be."""
    pieces, rest = [], line
    while len(rest) > MAX_LINE_OCTETS:
        # The last space or tab that leaves at most MAX_LINE_OCTETS before it; never at 0, so
        # each piece has text and the loop advances.
        cut = max(rest.rfind(b" ", 1, MAX_LINE_OCTETS + 1), rest.rfind(b"\t", 1, MAX_LINE_OCTETS + 1))
        if cut <= 0 or not rest[:cut].strip():
            return line  # a run without whitespace too long to fit: refused, not half folded
        pieces.append(rest[:cut])
        rest = rest[cut:]  # starts with the whitespace: a continuation line
    return b"\r\n".join([*pieces, rest])


def header_block(raw: bytes) -> bytes:
    """The header section of a CRLF-normalised message, with the blank line that ends it (all of
    `raw` when it has no body, nothing when it starts with the blank line). Pure."""
    if raw.startswith(b"\r\n"):
        return b""
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 4]


def message_normalise(raw: bytes) -> bytes:
    """`raw` as it is stored and sent: CRLF line ends only, over-long header lines folded. Pure;
    idempotent. Lines still over MAX_LINE_OCTETS are left for `overlong_line` to find."""
    return headers_fold(line_ends_normalise(raw))


def overlong_line(raw: bytes) -> tuple[int, int] | None:
    """(line number from 1, its length in octets) of the first line of a CRLF-normalised message
    longer than MAX_LINE_OCTETS, or None when every line fits. Pure."""
    index = _overlong_index(raw)
    if index is None:
        return None
    return index + 1, len(raw.split(b"\r\n", index + 1)[index])
