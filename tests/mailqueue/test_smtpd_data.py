"""The door's DATA reader against aiosmtpd's line-by-line rule, on any bytes in any pieces."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mailqueue.smtpd_data import data_read

AFTER = b"QUIT\r\n"  # what the client sends next: must be left in the stream


def line_by_line(wire: bytes) -> tuple[bytes, bytes]:
    """aiosmtpd's rule: CRLF-ended lines up to the line "."; one leading dot off each line.
    Returns the message and what follows the end of data."""
    lines, position = [], 0
    while True:
        end = wire.index(b"\r\n", position) + 2
        line = wire[position:end]
        position = end
        if line == b".\r\n":
            return b"".join(line[1:] if line.startswith(b".") else line for line in lines), wire[position:]
        lines.append(line)


def read(wire: bytes, *, pieces: list[int], stream_limit: int, limit: int | None = None):
    async def run():
        reader = asyncio.StreamReader(limit=stream_limit)
        position = 0
        for size in [*pieces, len(wire)]:
            reader.feed_data(wire[position : position + size])
            position += size
        reader.feed_eof()
        content = await data_read(reader, limit=limit)
        return content, await reader.read()

    return asyncio.run(run())


wire_bytes = st.binary(max_size=300).map(lambda body: body + b"\r\n.\r\n" + AFTER) | st.lists(
    st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b".\r\n", b"x", b"\r\n.\r\n"]), max_size=60
).map(lambda parts: b"".join(parts) + b"\r\n.\r\n" + AFTER)


@settings(max_examples=1500, deadline=None)
@given(wire=wire_bytes, pieces=st.lists(st.integers(1, 40), max_size=10), stream_limit=st.integers(5, 64))
def test_the_same_message_as_aiosmtpd_whatever_the_bytes_and_the_pieces(wire, pieces, stream_limit):
    expected, rest = line_by_line(wire)
    assert read(wire, pieces=pieces, stream_limit=stream_limit) == (expected, rest)


def test_the_usual_cases():
    assert read(b".\r\nQUIT\r\n", pieces=[], stream_limit=64) == (b"", b"QUIT\r\n")
    assert read(b"x\r\n.\r\n", pieces=[1, 1], stream_limit=64) == (b"x\r\n", b"")
    assert read(b"\r\n.\r\n", pieces=[], stream_limit=64) == (b"\r\n", b"")
    stuffed = b"Subject: s\r\n\r\n..leading dot\r\nlast line.\r\n.\r\n"
    assert read(stuffed, pieces=[], stream_limit=8) == (b"Subject: s\r\n\r\n.leading dot\r\nlast line.\r\n", b"")
    # A bare LF before the dot ends nothing.
    assert read(b"a\n.\r\nb\r\n.\r\n", pieces=[], stream_limit=64) == (b"a\n.\r\nb\r\n", b"")


def test_over_the_limit_the_data_is_read_to_its_end_and_refused():
    body = b"A line of text.\r\n" * 100
    wire = body + b".\r\n" + AFTER
    assert read(wire, pieces=[7], stream_limit=32, limit=len(body) - 1) == (None, AFTER)
    assert read(wire, pieces=[7], stream_limit=32, limit=len(body)) == (body, AFTER)
