"""Serve the SMTP submission door (SPEC §4.1) in the foreground until SIGINT or SIGTERM."""

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from mailqueue.smtpd import SubmissionHandler, addr_parse
from mailqueue.smtpd_processes import SessionCounts, listening_socket, workers_run
from mailqueue.smtpd_server import door_close, door_listen, door_run, door_warm_up


class Command(BaseCommand):
    help = "Run the SMTP submission door (aiosmtpd) on SMTP_INGRESS_ADDR or --addr HOST:PORT."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=None, help="HOST:PORT to listen on (default: SMTP_INGRESS_ADDR)")
        parser.add_argument("--db-threads", type=int, default=8, help="threads running the database work, per process")
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="door processes sharing the port, about one per CPU under load (default: SMTP_DOOR_PROCESSES, 1)",
        )

    def handle(self, *args, addr, db_threads, processes, verbosity, **options):
        try:
            host, port = addr_parse(addr or settings.SMTP_INGRESS_ADDR)
        except ValueError as error:
            raise CommandError(str(error)) from None
        processes = settings.SMTP_DOOR_PROCESSES if processes is None else processes
        if processes < 1:
            raise CommandError(f"--processes must be 1 or more, not {processes}.")
        if verbosity < 2:
            # aiosmtpd logs every command at INFO; the door logs what matters itself.
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        tls = "STARTTLS, AUTH over TLS only" if server_tls_enabled() else "no TLS, AUTH in clear"
        tls += f"; event loop {settings.SMTP_EVENT_LOOP}"  # what the listening line says
        try:
            if processes == 1:
                door_run(self._serve(host=host, port=port, db_threads=db_threads, tls=tls))
                return
            sock = listening_socket(host, port)
        except OSError as error:
            raise CommandError(f"Cannot listen on {host}:{port}: {error}") from None
        bound_host, bound_port = sock.getsockname()[:2]
        door_warm_up()  # once, before the fork: the workers are ready as soon as they start
        self.stdout.write(f"SMTP door listening on {bound_host}:{bound_port} ({tls}; {processes} processes)")
        self.stdout.flush()
        connections.close_all()  # none is shared with the workers

        counts = SessionCounts(processes)

        def worker() -> int:
            door_run(self._serve(sock=sock, db_threads=db_threads, processes=processes, counts=counts))
            return 0

        status = workers_run(processes=processes, worker=worker, listening=sock, counts=counts)
        self.stdout.write("SMTP door stopped")
        if status:
            raise CommandError(f"A door process ended with status {status}.", returncode=status)

    async def _serve(
        self, *, db_threads: int, host=None, port=None, sock=None, processes: int = 1, tls=None, counts=None
    ) -> None:
        """One door: on host and port (alone, saying so), or on `sock` as one of `processes` workers
        (balanced with the others through `counts`)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        handler = SubmissionHandler(db_threads=db_threads, processes=processes, session_counts=counts)
        server = await door_listen(host=host, port=port, sock=sock, handler=handler)
        if sock is None:
            bound_host, bound_port = server.sockets[0].getsockname()[:2]
            self.stdout.write(f"SMTP door listening on {bound_host}:{bound_port} ({tls})")
            self.stdout.flush()
        await stop.wait()
        if sock is None:
            self.stdout.write("SMTP door stopping")
        await door_close(server, handler)
        if sock is None:
            self.stdout.write("SMTP door stopped")


def server_tls_enabled() -> bool:
    return bool(settings.SMTP_TLS_CERT and settings.SMTP_TLS_KEY)
