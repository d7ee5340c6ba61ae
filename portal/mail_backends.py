"""The platform's own mail in development: each e-mail written whole to a file, one log line each.

The console backend prints messages to stdout, which a Celery worker re-logs line by line as
WARNINGs; this one keeps the log to one INFO line per e-mail and the message in a file to open.
"""

import itertools
import logging
import os
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

log = logging.getLogger("portal.mail")
_numbers = itertools.count(1)


class EmlFileBackend(BaseEmailBackend):
    """Writes each message to EMAIL_FILE_PATH as `<time>-<pid>-<n>.eml` (never overwrites one)."""

    def __init__(self, *, file_path=None, fail_silently=False, **kwargs):
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.directory = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            path = self.directory / f"{timezone.localtime():%Y%m%d-%H%M%S}-{os.getpid()}-{next(_numbers)}.eml"
            try:
                with path.open("xb") as file:
                    file.write(message.message().as_bytes(linesep="\r\n"))
            except OSError:
                if not self.fail_silently:
                    raise
                continue
            log.info("e-mail %r to %s written to %s", message.subject, ", ".join(message.recipients()), path)
            sent += 1
        return sent
