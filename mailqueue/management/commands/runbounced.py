"""Serve the bounce door (SPEC §10.1) in the foreground until SIGINT or SIGTERM."""

import asyncio
import contextlib
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailqueue.bounced import BounceHandler, bounce_door_listen
from mailqueue.smtpd import addr_parse
from mailqueue.smtpd_server import door_run

# A message being recorded when the door stops gets this long to finish before the threads stop.
STOP_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = (
        "Run the bounce door (aiosmtpd) on BOUNCE_INGRESS_ADDR or --addr HOST:PORT: it receives the "
        "bounces and complaints sent to the return-path domain BOUNCE_DOMAIN."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=None, help="HOST:PORT to listen on (default: BOUNCE_INGRESS_ADDR)")
        parser.add_argument("--db-threads", type=int, default=4, help="threads running the database work")

    def handle(self, *args, addr, db_threads, verbosity, **options):
        try:
            host, port = addr_parse(addr or settings.BOUNCE_INGRESS_ADDR)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if verbosity < 2:
            logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
        try:
            door_run(self._serve(host=host, port=port, db_threads=db_threads))
        except OSError as error:
            raise CommandError(f"Cannot listen on {host}:{port}: {error}") from None

    async def _serve(self, *, host: str, port: int, db_threads: int) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        handler = BounceHandler(db_threads=db_threads)
        server = await bounce_door_listen(host=host, port=port, handler=handler)
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        self.stdout.write(f"Bounce door listening on {bound_host}:{bound_port} for @{settings.BOUNCE_DOMAIN}")
        self.stdout.flush()
        await stop.wait()
        self.stdout.write("Bounce door stopping")
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=STOP_GRACE_SECONDS)
        handler.close()
        self.stdout.write("Bounce door stopped")
