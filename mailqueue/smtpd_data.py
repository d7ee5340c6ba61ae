"""Reading a message's DATA (RFC 5321 §4.1.1.4, §4.5.2) in large pieces.

aiosmtpd reads DATA one line at a time, a coroutine step per line: ~2 ms a 100 KB message,
which kept the door under Postfix at that size whatever else it did. `data_read` finds the end
of data with the stream's own search, 64 KB at a time, and takes the transparency dots off in one
pass; what it returns is what aiosmtpd's loop would have (the lines as sent, CRLF kept, one
leading dot removed from each line that has one).
"""

import asyncio

# Searched instead of CRLF "." CRLF: a search for the whole end of data would miss it when the
# CRLF before the dot was read in an earlier piece; the byte before this is checked to be CR.
_END = b"\n.\r\n"


async def data_read(reader: asyncio.StreamReader, *, limit: int | None) -> bytes | None:
    """The message after a 354, up to the line "." (the stream is left just after it); None when
    its data went over `limit` bytes (read to its end all the same, to answer 552 in turn)."""
    pieces: list[bytes] = []
    size = 0
    previous = b""  # the last byte read: is the LF of a match preceded by a CR?
    at_line_start = True  # the next byte starts a line: the end of data may be "." CRLF at once
    while True:
        if at_line_start:
            # Up to the next CR, so that a search for _END then finds an end right after it.
            piece = await _read_piece(reader, b"\r")
            at_line_start = False
            if piece == b".\r":
                following = await reader.readexactly(1)
                if following == b"\n":
                    break  # the line "." itself: the end of data
                piece += following
            ends = False
        else:
            piece = await _read_piece(reader, _END)
            ends = piece.endswith(_END) and (piece[-5:-4] if len(piece) >= 5 else previous) == b"\r"
            # A match after a bare LF ends a line (CRLF): the next one may be the "." line.
            at_line_start = piece.endswith(_END) and not ends
        size += len(piece) - (3 if ends else 0)
        if limit and size > limit:
            pieces.clear()  # over the limit: drop what was read, keep reading to the end of data
        else:
            pieces.append(piece[:-3] if ends else piece)  # the final "." CRLF is not the message's
        previous = piece[-1:]
        if ends:
            break
    if limit and size > limit:
        return None
    data = b"".join(pieces)
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


async def _read_piece(reader: asyncio.StreamReader, separator: bytes) -> bytes:
    """Up to and including `separator`, or, when it is not within the stream's limit, as much as
    can be read that is sure not to hold its beginning."""
    try:
        return await reader.readuntil(separator)
    except asyncio.LimitOverrunError as error:
        return await reader.readexactly(error.consumed)
