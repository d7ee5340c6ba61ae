"""Receive one bounce on stdin (SPEC §10.1), for an MTA's pipe transport, e.g. Postfix's master.cf:

    portal-bounce unix - n n - - pipe flags=Rq user=portal
      argv=/app/.venv/bin/python /app/manage.py receive_bounce -f ${sender} ${recipient}

Exit codes are sendmail's (sysexits.h), which MTAs understand: 0 recorded (attributed, or kept
for operators), 65 an empty or oversized message (the MTA returns it), 75 a temporary failure
(the database is unreachable: the MTA keeps the message and tries again).
"""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from mailqueue.bounces import bounce_receive

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = "Record one bounce or complaint read from stdin (for an MTA's pipe transport)."

    def add_arguments(self, parser):
        parser.add_argument("recipients", nargs="*", help="the envelope recipients (the return paths)")
        parser.add_argument("-f", dest="sender", default="", help="the envelope sender")

    def handle(self, *args, recipients, sender, **options):
        raw = sys.stdin.buffer.read(settings.MAX_MESSAGE_BYTES + 1)
        if not raw.strip():
            self.stderr.write("receive_bounce: empty message")
            sys.exit(EX_DATAERR)
        if len(raw) > settings.MAX_MESSAGE_BYTES:
            self.stderr.write(f"receive_bounce: message larger than {settings.MAX_MESSAGE_BYTES} bytes")
            sys.exit(EX_DATAERR)
        try:
            outcome = bounce_receive(raw=raw, envelope_recipients=recipients, envelope_sender=sender)
        except DatabaseError as error:
            self.stderr.write(f"receive_bounce: temporary failure, try again later ({error.__class__.__name__})")
            sys.exit(EX_TEMPFAIL)
        self.stdout.write(f"receive_bounce: {outcome.result}" + (f" ({outcome.problem})" if outcome.problem else ""))
        sys.exit(EX_OK)
