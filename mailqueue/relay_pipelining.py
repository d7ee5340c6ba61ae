"""Command pipelining with the relay (RFC 2920), when it offers PIPELINING in its EHLO reply, as
Postfix, Exim and the large relays do: MAIL, every RCPT and DATA go out in one write and their
replies are read after it, where smtplib's `sendmail` waits for each command. A relay that does
not offer it gets smtplib's command-by-command transaction.

The next transaction's MAIL, RCPT and DATA even go out in the same write as this one's content
and final dot (RFC 2920 §3.1: a content may begin a group, DATA ends one), when the caller names
it (`next_transaction`): the relay reads them while this message's reply is worked on here, and
the next `sendmail` of that same envelope only reads their replies. Its content still waits for
its own 354, and its final dot for `before_end` (the record of the message before:
`sent_recorder`). Commands
sent ahead for a transaction that does not follow (the batch stopped) are never given a content:
the session is closed without QUIT, and the relay discards them.

What the relay said is read back in the order of the commands, and ends as smtplib's `sendmail`
ends: SMTPSenderRefused, SMTPRecipientsRefused (every recipient refused, or a 421 on the way),
SMTPDataError, or the refused recipients; the connection is left ready for the next message (RSET,
unless commands were sent ahead) or closed after a 421. A relay that answers 354 to a DATA it
should have refused (no sender or no recipient accepted) is never sent a content: the connection
is dropped, the message unended.
"""

import smtplib

ACCEPTED = (250, 251)
CONNECTION_CLOSING = 421


class Pipelining:
    """A mixin for smtplib.SMTP: `sendmail` pipelined when the relay offers it. The class it is
    mixed into gives `_content_end(msg, ahead)` (after the 354: the content, then its final dot
    with the commands `_ahead()` gave, in one write), `_mail_command` and `_rcpt_command`.

    Hooks, set by the caller for one `sendmail`: `before_replies()` runs once the commands are
    out, before their replies are read; `next_transaction()`, asked for right after it (the
    relay is answering meanwhile), gives the (sender, recipients, msg) whose commands go out with
    the final dot, or None."""

    before_replies = None
    next_transaction = None
    _sent_ahead: tuple | None = None  # (sender, recipients, size) of commands written, replies not read

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        self.ehlo_or_helo_if_needed()
        to_list = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        if self._sent_ahead is not None and (
            isinstance(msg, str)
            or mail_options
            or rcpt_options
            or self._sent_ahead != (from_addr, tuple(to_list), len(msg))
        ):
            self.close()  # a bug of the caller's: never give a content to the wrong envelope
            raise smtplib.SMTPServerDisconnected("the commands sent ahead were for another transaction")
        plain = not isinstance(msg, str) and not any(option.lower() == "smtputf8" for option in mail_options)
        if not plain or not self.has_extn("pipelining"):
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        to_addrs = to_list
        if self._sent_ahead is None:
            self.send(self._envelope_commands(from_addr, to_addrs, len(msg), mail_options, rcpt_options))
        self._sent_ahead = None
        if self.before_replies is not None:
            self.before_replies()
        ahead = self._ahead()  # the next transaction's commands, while the relay answers these

        code, reply = self.getreply()
        if code == CONNECTION_CLOSING:
            self.close()
            raise smtplib.SMTPSenderRefused(code, reply, from_addr)
        sender_refused = None if code in ACCEPTED else (code, reply)
        refused: dict[str, tuple[int, bytes]] = {}
        for address in to_addrs:
            code, reply = self.getreply()
            if code not in ACCEPTED:
                refused[address] = (code, reply)
            if code == CONNECTION_CLOSING:
                self.close()
                raise smtplib.SMTPRecipientsRefused(refused)
        data_code, data_reply = self.getreply()
        if sender_refused is not None:
            self._abandon(data_code)
            raise smtplib.SMTPSenderRefused(*sender_refused, from_addr)
        if len(refused) == len(to_addrs):
            self._abandon(data_code)
            raise smtplib.SMTPRecipientsRefused(refused)
        if data_code != 354:
            self._abandon(data_code)
            raise smtplib.SMTPDataError(data_code, data_reply)
        code, reply = self._content_end(msg, ahead)
        if code != 250:
            self._abandon(code)
            raise smtplib.SMTPDataError(code, reply)
        return refused

    def _envelope_commands(self, from_addr, to_addrs, size: int, mail_options=(), rcpt_options=()) -> str:
        """MAIL, each RCPT and DATA of one transaction, as one write."""
        options = ([f"size={size}"] if self.has_extn("size") else []) + list(mail_options)
        commands = [self._mail_command(from_addr, options)]
        commands += [self._rcpt_command(address, rcpt_options) for address in to_addrs]
        commands.append("DATA")
        for command in commands:  # as smtplib's putcmd: no line break inside a command
            if "\r" in command or "\n" in command:
                raise ValueError(f"command and arguments contain prohibited newline characters: {command!r}")
        return "".join(f"{command}\r\n" for command in commands)

    def _ahead(self) -> tuple[bytes, tuple] | None:
        """The next transaction's commands, to go out with this content (`next_transaction`), and
        what they are for (`_sent_ahead` once they are out); None without PIPELINING or a next
        transaction."""
        if self.next_transaction is None or not self.has_extn("pipelining"):
            return None
        following = self.next_transaction()
        if following is None:
            return None
        sender, recipients, msg = following
        commands = self._envelope_commands(sender, recipients, len(msg))
        return commands.encode("ascii"), (sender, tuple(recipients), len(msg))

    def _abandon(self, code: int) -> None:
        """After a transaction that did not go through: closed on a 421, dropped when the relay
        waits for a content (354) it must not get, reset otherwise (`rset`)."""
        if code in (CONNECTION_CLOSING, 354):
            self.close()
        else:
            self._rset()

    def rset(self):
        """RSET, unless commands were sent ahead: the relay would take it for their content (after
        a refused content it has reset the transaction already, RFC 5321 §4.1.1.4)."""
        if self._sent_ahead is not None:
            return 250, b"not needed: the next transaction is under way"
        return super().rset()

    def quit(self):
        """QUIT, unless commands were sent ahead (the relay may be waiting for their content):
        then the session is closed, and the relay discards that transaction."""
        if self._sent_ahead is not None:
            self.close()
            return 221, b"closed"
        return super().quit()

    def close(self):
        self._sent_ahead = None
        super().close()
