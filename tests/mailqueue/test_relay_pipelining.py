"""Command pipelining with the relay (RFC 2920, `mailqueue.relay_pipelining`), against a scripted
SMTP server on a real socket that notes each chunk it reads: with PIPELINING offered, MAIL, RCPT
and DATA arrive in one write; what the relay answers ends each message as smtplib would, and a
relay that wrongly asks for a content it refused gets none."""

import socket
import socketserver
import threading

import pytest

from mailqueue.relay import _SMTP, SmtpRelay

RAW = b"From: a@example.org\r\nSubject: pipelining\r\n\r\nHello.\r\n"


class ScriptedServer(socketserver.ThreadingTCPServer):
    """Answers each command as `replies[verb]` says (a list is used up one reply per command,
    its last kept), 250 otherwise; notes every chunk read and every message ended."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, *, pipelining: bool, replies: dict[str, str | list[str]] | None = None):
        super().__init__(("127.0.0.1", 0), _Session)
        self.pipelining = pipelining
        self.replies = {
            verb: list(reply) if isinstance(reply, list) else [reply] for verb, reply in (replies or {}).items()
        }
        self.chunks: list[bytes] = []
        self.contents: list[bytes] = []
        self.sessions = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def reply(self, verb: str, default: str = "250 OK") -> str:
        script = self.replies.get(verb)
        if not script:
            return default
        return script.pop(0) if len(script) > 1 else script[0]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.shutdown()
        self.server_close()


class _Session(socketserver.BaseRequestHandler):
    def handle(self):
        server: ScriptedServer = self.server
        server.sessions += 1
        connection: socket.socket = self.request
        buffer = b""
        in_data = False
        connection.sendall(b"220 scripted ESMTP\r\n")
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return
            server.chunks.append(chunk)
            buffer += chunk
            while True:
                if in_data:
                    end = buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        break
                    server.contents.append(buffer[: end + 2])
                    buffer, in_data = buffer[end + 5 :], False
                    connection.sendall(f"{server.reply('END')}\r\n".encode())
                    continue
                line, found, rest = buffer.partition(b"\r\n")
                if not found:
                    break
                buffer = rest
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode()
                if verb == "EHLO":
                    extensions = ["250-scripted", "250-SIZE 10000000"] + (
                        ["250-PIPELINING"] if server.pipelining else []
                    )
                    connection.sendall(("\r\n".join([*extensions, "250 8BITMIME"]) + "\r\n").encode())
                elif verb == "QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                else:
                    reply = server.reply(verb, "354 go ahead" if verb == "DATA" else "250 OK")
                    connection.sendall(f"{reply}\r\n".encode())
                    if verb == "DATA" and reply.startswith("354"):
                        in_data = True
                    if reply.startswith("421"):
                        return


def send(server: ScriptedServer, count: int = 1, **send_arguments) -> list[dict]:
    relay = SmtpRelay(server.url, timeout=10)
    try:
        return [
            relay.send(sender="bounce@example.net", recipients=["b@example.org"], raw=RAW, **send_arguments)
            for _ in range(count)
        ]
    finally:
        relay.close()


def envelope_chunks(server: ScriptedServer) -> list[bytes]:
    return [chunk for chunk in server.chunks if chunk.upper().startswith((b"MAIL", b"RCPT", b"DATA"))]


def test_with_pipelining_offered_mail_rcpt_and_data_go_out_in_one_write():
    with ScriptedServer(pipelining=True) as server:
        results = send(server, count=2)
    assert results == [{"b@example.org": (250, "OK")}] * 2
    assert (
        envelope_chunks(server)
        == [f"mail FROM:<bounce@example.net> size={len(RAW)}\r\nrcpt TO:<b@example.org>\r\nDATA\r\n".encode()] * 2
    )
    assert server.contents == [RAW] * 2
    assert server.sessions == 1


def test_without_pipelining_each_command_waits_for_its_reply():
    with ScriptedServer(pipelining=False) as server:
        results = send(server)
    assert results == [{"b@example.org": (250, "OK")}]
    assert envelope_chunks(server) == [
        f"mail FROM:<bounce@example.net> size={len(RAW)}\r\n".encode(),
        b"rcpt TO:<b@example.org>\r\n",
        b"data\r\n",
    ]
    assert server.contents == [RAW]


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_refused_sender_is_the_recipients_reply_and_the_session_goes_on(pipelining):
    replies = {"MAIL": ["550 5.7.1 sender refused", "250 OK"], "RCPT": ["503 5.5.1 no sender", "250 OK"]}
    if pipelining:  # one command at a time, neither RCPT nor DATA is sent after a refused MAIL
        replies["DATA"] = ["503 5.5.1 no valid recipients", "354 go ahead"]
    else:
        replies["RCPT"] = "250 OK"
    with ScriptedServer(pipelining=pipelining, replies=replies) as server:
        first, second = send(server, count=2)
    assert first == {"b@example.org": (550, "5.7.1 sender refused")}
    assert second == {"b@example.org": (250, "OK")}
    assert server.contents == [RAW]
    assert server.sessions == 1


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_refused_recipient_gets_its_reply_and_the_message_is_not_sent(pipelining):
    replies = {"RCPT": ["450 4.2.0 mailbox busy", "250 OK"]}
    if pipelining:  # one command at a time, DATA is not sent after the only recipient was refused
        replies["DATA"] = ["554 5.5.1 no valid recipients", "354 go ahead"]
    with ScriptedServer(pipelining=pipelining, replies=replies) as server:
        first, second = send(server, count=2)
    assert first == {"b@example.org": (450, "4.2.0 mailbox busy")}
    assert second == {"b@example.org": (250, "OK")}
    assert server.contents == [RAW]


def test_a_relay_asking_for_the_content_of_a_refused_transaction_gets_none():
    """RFC 2920: DATA must be refused when no recipient was accepted; a relay answering 354
    anyway is never sent a content (it would be a message to nobody, or to whom?): the
    connection is dropped, the next message opens another."""
    replies = {"RCPT": ["550 5.1.1 no such user", "250 OK"], "DATA": "354 go ahead"}
    with ScriptedServer(pipelining=True, replies=replies) as server:
        first, second = send(server, count=2)
    assert first == {"b@example.org": (550, "5.1.1 no such user")}
    assert second == {"b@example.org": (250, "OK")}
    assert server.contents == [RAW]
    assert server.sessions == 2


def test_a_421_to_the_recipient_closes_the_session_and_defers_the_message():
    replies = {"RCPT": ["421 4.3.2 shutting down", "250 OK"]}
    with ScriptedServer(pipelining=True, replies=replies) as server:
        first, second = send(server, count=2)
    assert first == {"b@example.org": (421, "4.3.2 shutting down")}
    assert second == {"b@example.org": (250, "OK")}
    assert server.sessions == 2


def test_a_refused_content_is_the_recipients_reply():
    replies = {"END": ["552 5.3.4 message too big", "250 OK"]}
    with ScriptedServer(pipelining=True, replies=replies) as server:
        first, second = send(server, count=2)
    assert first == {"b@example.org": (552, "5.3.4 message too big")}
    assert second == {"b@example.org": (250, "OK")}
    assert server.sessions == 1


def test_the_hooks_run_while_the_relay_reads_the_commands_and_before_the_final_dot():
    """`before_replies` once MAIL, RCPT and DATA are out, before their replies are read;
    `before_end` once the content is out, before its final dot."""
    events = []
    with ScriptedServer(pipelining=True) as server:
        replies = lambda: events.append(("before_replies", len(server.contents)))  # noqa: E731
        before = lambda: events.append(("before_end", len(server.contents)))  # noqa: E731
        send(server, before_replies=replies, before_end=before)
    assert events == [("before_replies", 0), ("before_end", 0)]  # no message ended at either
    assert server.contents == [RAW]


def test_a_line_break_in_a_command_is_refused_before_anything_is_sent():
    """As smtplib's putcmd refuses it: no command can be smuggled into the pipelined write."""
    with ScriptedServer(pipelining=True) as server:
        client = _SMTP("127.0.0.1", server.server_address[1], timeout=10)
        try:
            with pytest.raises(ValueError, match="prohibited newline"):
                client.sendmail("bounce@example.net", ["b@example.org"], RAW, mail_options=["BODY=8BITMIME\r\nRSET"])
        finally:
            client.close()
    assert envelope_chunks(server) == []


def test_the_relay_socket_sends_at_once():
    """The content and its final dot are two writes: with Nagle's algorithm the dot would wait for
    the relay's delayed acknowledgement of the content (~40 ms a message, measured)."""
    with ScriptedServer(pipelining=True) as server:
        relay = SmtpRelay(server.url, timeout=10)
        try:
            relay.open()
            assert relay.connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            relay.close()


def test_the_next_transaction_goes_out_with_this_dot_worked_out_before_the_replies_are_read(monkeypatch):
    """`next_transaction` is asked for once this message's commands are out, while the relay
    answers them (not after its content); its MAIL, RCPT and DATA then leave in the final dot's
    write, and the next `send` of that envelope writes no command of its own."""
    events = []
    real_getreply = _SMTP.getreply

    def getreply(connection):
        reply = real_getreply(connection)
        events.append(("reply", reply[0]))
        return reply

    monkeypatch.setattr(_SMTP, "getreply", getreply)
    second = ("bounce@example.net", ["c@example.org"], RAW)

    def following():
        events.append("next_transaction")
        return second

    with ScriptedServer(pipelining=True) as server:
        relay = SmtpRelay(server.url, timeout=10)
        try:
            relay.open()
            relay.connection.ehlo_or_helo_if_needed()
            events.clear()
            first = relay.send(
                sender="bounce@example.net",
                recipients=["b@example.org"],
                raw=RAW,
                before_replies=lambda: events.append("before_replies"),
                before_end=lambda: events.append("before_end"),
                next_transaction=following,
            )
            read = b"".join(server.chunks)
            then = relay.send(sender=second[0], recipients=second[1], raw=RAW)
        finally:
            relay.close()

    assert events == [
        "before_replies",
        "next_transaction",
        ("reply", 250),  # MAIL
        ("reply", 250),  # RCPT
        ("reply", 354),  # DATA
        "before_end",
        ("reply", 250),  # the content's
        ("reply", 250),  # the next MAIL, RCPT and DATA, read by the second send
        ("reply", 250),
        ("reply", 354),
        ("reply", 250),
        ("reply", 221),  # QUIT
    ]
    assert first == {"b@example.org": (250, "OK")} and then == {"c@example.org": (250, "OK")}
    assert read.endswith(
        RAW + b".\r\nmail FROM:<bounce@example.net> size=" + str(len(RAW)).encode() + b"\r\n"
        b"rcpt TO:<c@example.org>\r\nDATA\r\n"
    )
    assert len(envelope_chunks(server)) == 1  # the first message's commands; the second's went with its dot
    assert server.contents == [RAW, RAW]


@pytest.mark.parametrize(
    "replies",
    [
        {"MAIL": ["550 5.7.1 sender refused", "250 OK"], "DATA": ["503 5.5.1 no sender", "354 go ahead"]},
        {"RCPT": ["550 5.1.1 no such user", "250 OK"], "DATA": ["554 5.5.1 no recipients", "354 go ahead"]},
        {"DATA": ["451 4.3.0 try later", "354 go ahead"]},
        {"RCPT": ["421 4.3.2 shutting down", "250 OK"]},
    ],
    ids=["sender refused", "recipient refused", "data refused", "421"],
)
def test_a_transaction_that_fails_sends_none_of_the_next_ones_commands(replies):
    """The next transaction is worked out before this one's replies are read; when they refuse it,
    its commands are never sent nor noted as sent: the next `send` writes them itself."""
    following = ("bounce@example.net", ["c@example.org"], RAW)
    with ScriptedServer(pipelining=True, replies=replies) as server:
        relay = SmtpRelay(server.url, timeout=10)
        try:
            first = relay.send(
                sender="bounce@example.net", recipients=["b@example.org"], raw=RAW, next_transaction=lambda: following
            )
            assert relay.connection is None or relay.connection._sent_ahead is None
            then = relay.send(sender=following[0], recipients=following[1], raw=RAW)
        finally:
            relay.close()

    assert first["b@example.org"][0] >= 400
    assert then == {"c@example.org": (250, "OK")}
    assert [chunk.count(b"rcpt TO:<c@example.org>") for chunk in envelope_chunks(server)] == [0, 1]
    assert server.contents == [RAW]
