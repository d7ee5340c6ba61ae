"""Submit the mail that `manage.py sendmail` spooled while the SMTP door was unreachable.

    python manage.py sendmail_flush

Run on the web server, in the hosting's environment (PORTAL_SENDMAIL_URL, SENDMAIL_SPOOL_DIR),
every minute from the hosting's crontab: the spool is on that server's disk and the clear SMTP
password only in that environment, so a Celery worker elsewhere could do neither.

Messages go oldest first, one SMTP session each. A spool file is removed only after the door's
250; a permanent refusal (5xx) moves it to failed/ with the reply, never deletes it. The first
temporary failure (door unreachable, 4xx) or a refusal that is not the message's fault (AUTH,
configuration) stops the run and keeps that file and the rest for the next one. Exit codes:
0 when nothing is left waiting, otherwise sendmail's (75 temporary, 77 AUTH, 78 configuration).
Output only when something happened, so that cron stays quiet on an empty spool.
"""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from mailqueue import spool
from mailqueue.management.commands.sendmail import EX_DATAERR, EX_OK, SendmailError, _submit, _url_parse


class Command(BaseCommand):
    help = "Submit the messages that `sendmail` spooled while the SMTP door was unreachable, oldest first."
    requires_system_checks = []

    def handle(self, *args, **options):
        code = sendmail_flush(stdout=self.stdout, stderr=sys.stderr)
        if code:
            sys.exit(code)


def sendmail_flush(*, stdout, stderr) -> int:
    """Flush the spool of PORTAL_SENDMAIL_URL's service; a sysexits code."""
    try:
        url = _url_parse(settings.PORTAL_SENDMAIL_URL)
    except SendmailError as error:
        stderr.write(f"sendmail_flush: {error.reason}\n")
        return error.exit_code
    with spool.spool_flush_lock(service=url["user"]) as acquired:
        if not acquired:
            return EX_OK  # another flush is at work on this spool
        return _flush(url=url, stdout=stdout, stderr=stderr)


def _flush(*, url: dict, stdout, stderr) -> int:
    submitted = set_aside = 0
    code = EX_OK
    for message in spool.spooled_messages(service=url["user"]):
        if isinstance(message, spool.UnreadableSpoolFile):
            spool.spooled_message_set_aside(path=message.path, reply=f"unreadable spool file: {message.reason}")
            stderr.write(f"sendmail_flush: {message.path.name} unreadable ({message.reason}), set aside\n")
            set_aside += 1
            continue
        try:
            _submit(url=url, sender=message.sender, recipients=message.recipients, raw=message.raw)
        except SendmailError as error:
            if error.exit_code != EX_DATAERR:
                stderr.write(f"sendmail_flush: {error.reason}; kept for the next run\n")
                code = error.exit_code
                break
            target = spool.spooled_message_set_aside(path=message.path, reply=error.reason)
            stderr.write(f"sendmail_flush: {message.path.name} refused ({error.reason}), set aside as {target}\n")
            set_aside += 1
            continue
        spool.spooled_message_done(path=message.path)
        submitted += 1
    if submitted or set_aside:
        stdout.write(f"{submitted} submitted, {set_aside} set aside")
    return code
