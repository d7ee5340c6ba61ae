"""The bounce door (SPEC §10.1): an SMTP server for the return-path domain only, where the
recipients' servers send their bounces and feedback loops their complaints. No AUTH (bounces
come from anywhere), every recipient outside BOUNCE_DOMAIN refused with 550 (it is not a
relay), the submission door's size limit. Each message goes to `bounces.bounce_receive` in a
database thread; 250 only once it is recorded, 451 when it could not be (the sender retries)."""

import asyncio
import logging

from aiosmtpd.smtp import SMTP
from django.conf import settings

from mailqueue.bounces import bounce_receive
from mailqueue.db_threads import DatabaseThreads
from mailqueue.return_path import is_bounce_address

log = logging.getLogger(__name__)

REPLY_NOT_OURS = "550 5.7.1 Not a bounce address of this platform: relay access denied"
REPLY_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
REPLY_TEMPORARY = "451 4.3.0 Temporary error, please try again later"


class BounceHandler:
    """aiosmtpd handler: RCPT in the bounce domain only; DATA recorded by `bounce_receive`."""

    def __init__(self, *, db_threads: int = 4):
        self._threads = DatabaseThreads(size=db_threads, name="bounced-db")

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        if not is_bounce_address(address):
            log.info("bounce door: recipient %r refused", address[:320])
            return REPLY_NOT_OURS
        if len(envelope.rcpt_tos) >= settings.MAX_RECIPIENTS:
            return REPLY_TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope) -> str:
        try:
            outcome = await self._threads.run(
                _receive, envelope.original_content, list(envelope.rcpt_tos), envelope.mail_from or ""
            )
        except Exception:
            log.exception("bounce door: message from %r not recorded (temporary error)", envelope.mail_from)
            return REPLY_TEMPORARY
        return f"250 2.0.0 Ok: {outcome.result}"

    def close(self) -> None:
        self._threads.close()


def _receive(raw: bytes, recipients: list[str], sender: str):
    return bounce_receive(raw=raw, envelope_recipients=recipients, envelope_sender=sender)


class BounceSMTP(SMTP):
    # Bounces quote what they return (HTML on one line, long headers): the bound only guards memory.
    line_length_limit = 64 * 1024


def bounce_smtp(handler: BounceHandler) -> SMTP:
    """One session of the bounce door."""
    return BounceSMTP(
        handler,
        hostname=settings.SMTP_INGRESS_HOSTNAME,
        ident="portal bounces",
        data_size_limit=settings.MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=True,
        timeout=settings.SMTP_IDLE_TIMEOUT,
    )


async def bounce_door_listen(*, host: str, port: int, handler: BounceHandler) -> asyncio.Server:
    """Start listening (port 0 picks a free one); the caller closes the server, then the handler."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: bounce_smtp(handler), host=host, port=port)
