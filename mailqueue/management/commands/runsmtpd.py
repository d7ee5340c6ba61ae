"""Serve the SMTP submission door (SPEC §4.1) in the foreground until SIGINT or SIGTERM."""

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailqueue.smtpd import SubmissionHandler, addr_parse
from mailqueue.smtpd_server import door_close, door_listen


class Command(BaseCommand):
    help = "Run the SMTP submission door (aiosmtpd) on SMTP_INGRESS_ADDR or --addr HOST:PORT."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=None, help="HOST:PORT to listen on (default: SMTP_INGRESS_ADDR)")
        parser.add_argument("--db-threads", type=int, default=8, help="threads running the database work")

    def handle(self, *args, addr, db_threads, verbosity, **options):
        try:
            host, port = addr_parse(addr or settings.SMTP_INGRESS_ADDR)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if verbosity < 2:
            # aiosmtpd logs every command at INFO; the door logs what matters itself.
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        try:
            asyncio.run(self._serve(host=host, port=port, db_threads=db_threads))
        except OSError as error:
            raise CommandError(f"Cannot listen on {host}:{port}: {error}") from None

    async def _serve(self, *, host: str, port: int, db_threads: int) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        handler = SubmissionHandler(db_threads=db_threads)
        server = await door_listen(host=host, port=port, handler=handler)
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        tls = "STARTTLS, AUTH over TLS only" if server_tls_enabled() else "no TLS, AUTH in clear"
        self.stdout.write(f"SMTP door listening on {bound_host}:{bound_port} ({tls})")
        self.stdout.flush()
        await stop.wait()
        self.stdout.write("SMTP door stopping")
        await door_close(server, handler)
        self.stdout.write("SMTP door stopped")


def server_tls_enabled() -> bool:
    return bool(settings.SMTP_TLS_CERT and settings.SMTP_TLS_KEY)
