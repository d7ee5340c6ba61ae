"""Command pipelining with the relay (RFC 2920), when it offers PIPELINING in its EHLO reply, as
Postfix, Exim and the large relays do: MAIL, every RCPT and DATA go out in one write and their
replies are read after it, one round trip where smtplib's `sendmail` waits for each command (two
plus one per recipient). The content follows the 354 as before (`_content_end`, with the hook that
waits there for the record of the message before). A relay that does not offer it gets smtplib's
command-by-command transaction.

What the relay said is read back in the order of the commands, and ends as smtplib's `sendmail`
ends: SMTPSenderRefused, SMTPRecipientsRefused (every recipient refused, or a 421 on the way),
SMTPDataError, or the refused recipients; the connection is left ready for the next message (RSET)
or closed after a 421. A relay that answers 354 to a DATA it should have refused (no sender or no
recipient accepted) is never sent a content: the connection is dropped, the message unended.
"""

import smtplib

ACCEPTED = (250, 251)
CONNECTION_CLOSING = 421


class Pipelining:
    """A mixin for smtplib.SMTP: `sendmail` pipelined when the relay offers it. The class it is
    mixed into gives `_content_end(msg)`: the content and its final dot, after the 354."""

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        self.ehlo_or_helo_if_needed()
        plain = not isinstance(msg, str) and not any(option.lower() == "smtputf8" for option in mail_options)
        if not plain or not self.has_extn("pipelining"):
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        to_addrs = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        options = ([f"size={len(msg)}"] if self.has_extn("size") else []) + list(mail_options)
        commands = [self._mail_command(from_addr, options)]
        commands += [self._rcpt_command(address, rcpt_options) for address in to_addrs]
        commands.append("DATA")
        for command in commands:  # as smtplib's putcmd: no line break inside a command
            if "\r" in command or "\n" in command:
                raise ValueError(f"command and arguments contain prohibited newline characters: {command!r}")
        self.send("".join(f"{command}\r\n" for command in commands))

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
        code, reply = self._content_end(msg)
        if code != 250:
            self._abandon(code)
            raise smtplib.SMTPDataError(code, reply)
        return refused

    def _abandon(self, code: int) -> None:
        """After a transaction that did not go through: closed on a 421, dropped when the relay
        waits for a content (354) it must not get, reset otherwise."""
        if code in (CONNECTION_CLOSING, 354):
            self.close()
        else:
            self._rset()
