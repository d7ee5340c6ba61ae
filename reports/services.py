"""The daily error digest (SPEC §4.4): one e-mail per hosting and day, sent once.

The unique ErrorDigest(hosting, day) row is the once-only guarantee: a run takes it under a row
lock (skipping a row another run holds), marks it `sending` with a lease and commits; it sends
outside any transaction (no lock is held during SMTP), then records the outcome. A failed send is
recorded (`failed`, `last_error`, `attempts`) and retried hourly; a run that died while sending
leaves a lease that expires, and the digest is retried then (at most one duplicate, in that case).
"""

import datetime
import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from hosting.models import Hosting
from mailqueue.selectors import mail_service_get
from reports.models import DigestStatus, ErrorDigest
from reports.selectors import hosting_errors_of_day, hostings_with_errors_on

logger = logging.getLogger(__name__)

# Digests of earlier days left unsent (mailer down) are retried for this many days.
DIGEST_RETRY_DAYS = 7
# The platform's mailer must not hold a digest forever.
DIGEST_SEND_TIMEOUT_SECONDS = 30
# A digest being sent belongs to its run this long (well beyond the send timeout).
DIGEST_LEASE = datetime.timedelta(minutes=10)


def error_digest_message(
    *, hosting: Hosting, day: datetime.date, recipient: str
) -> tuple[EmailMultiAlternatives | None, int]:
    """The digest e-mail (text and HTML, in the customer's language) of the hosting's errors of
    the local `day`, at most DIGEST_MAX_ERRORS listed with the total, and that total.
    (None, 0) if there were none."""
    errors_of_day = hosting_errors_of_day(hosting_id=hosting.pk, day=day)
    error_count = errors_of_day.count()
    if not error_count:
        return None, 0
    errors = list(errors_of_day[: settings.DIGEST_MAX_ERRORS])
    context = {
        "hosting": hosting,
        "customer": hosting.customer,
        "day": day,
        "error_count": error_count,
        "errors": errors,
        "shown_count": len(errors),
        "capped": len(errors) < error_count,
    }
    with translation.override(hosting.customer.language):
        subject = " ".join(render_to_string("reports/email/error_digest_subject.txt", context).split())
        text = render_to_string("reports/email/error_digest.txt", context)
        html = render_to_string("reports/email/error_digest.html", context)
    message = EmailMultiAlternatives(
        subject,
        text,
        settings.DEFAULT_FROM_EMAIL,
        [recipient],
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return message, error_count


def error_digest_send(*, hosting_id: int, day: datetime.date) -> ErrorDigest | None:
    """Send the hosting's digest of `day` unless it was sent already or another run holds it.

    Returns the digest row as left (sent, failed) or None when there was nothing to do here.
    Never raises for a mailer failure: it is recorded on the row for the next run.
    """
    ErrorDigest.objects.get_or_create(hosting_id=hosting_id, day=day)
    now = timezone.now()
    with transaction.atomic():
        # SKIP LOCKED on PostgreSQL: a concurrent run moves on; SQLite serialises transactions.
        digest = (
            ErrorDigest.objects.select_for_update(skip_locked=True)
            .select_related("hosting__customer")
            .filter(hosting_id=hosting_id, day=day)
            .first()
        )
        if digest is None or digest.status == DigestStatus.SENT:
            return None
        if digest.status == DigestStatus.SENDING and digest.lease_until and digest.lease_until > now:
            return None  # another run is sending it
        recipient = mail_service_get(hosting=digest.hosting).effective_report_recipient
        message, error_count = error_digest_message(hosting=digest.hosting, day=day, recipient=recipient)
        if message is None:
            return None  # errors gone since (retention): nothing to report, the row stays pending
        digest.status = DigestStatus.SENDING
        digest.lease_until = now + DIGEST_LEASE
        digest.recipient = recipient
        digest.error_count = error_count
        digest.save(update_fields=["status", "lease_until", "recipient", "error_count"])
    # Outside the transaction: no lock is held while the mailer talks SMTP.
    try:
        message.connection = get_connection(timeout=DIGEST_SEND_TIMEOUT_SECONDS)
        message.send()
    except Exception as error:  # any mailer failure (refused, down, timeout) is retried later
        logger.warning("error digest of hosting %s for %s not sent: %s", hosting_id, day, error)
        digest.status = DigestStatus.FAILED
        digest.last_error = f"{type(error).__name__}: {error}"[:500]
    else:
        digest.status = DigestStatus.SENT
        digest.sent_at = timezone.now()
        digest.last_error = ""
    digest.attempts += 1
    digest.lease_until = None
    ErrorDigest.objects.filter(pk=digest.pk, status=DigestStatus.SENDING).update(
        status=digest.status,
        sent_at=digest.sent_at,
        last_error=digest.last_error,
        attempts=digest.attempts,
        lease_until=None,
    )
    return digest


def error_digest_resend(*, hosting: Hosting, day: datetime.date) -> ErrorDigest | None:
    """Send the hosting's digest of `day` again, at an operator's request, even if it went out.

    The row goes back to pending and `error_digest_send` takes it as any run would (never while
    another run is sending it), so the outcome is recorded the same way. Returns the row as left
    (sent, failed), or None when that day had no errors or another run is sending it.
    """
    if not hosting_errors_of_day(hosting_id=hosting.pk, day=day).exists():
        return None
    ErrorDigest.objects.get_or_create(hosting_id=hosting.pk, day=day)
    sending = Q(status=DigestStatus.SENDING, lease_until__gt=timezone.now())
    ErrorDigest.objects.filter(hosting_id=hosting.pk, day=day).exclude(sending).update(status=DigestStatus.PENDING)
    return error_digest_send(hosting_id=hosting.pk, day=day)


def error_digests_retry() -> dict[str, int]:
    """Retry the digests of the last DIGEST_RETRY_DAYS days that failed, or whose sending run
    died (lease expired). Run hourly: a mailer outage delays a digest by an hour, not a day."""
    since = timezone.localdate() - datetime.timedelta(days=DIGEST_RETRY_DAYS)
    stuck = Q(status=DigestStatus.SENDING, lease_until__lt=timezone.now())
    rows = ErrorDigest.objects.filter(Q(status=DigestStatus.FAILED) | stuck, day__gte=since)
    outcome = {"sent": 0, "failed": 0}
    for hosting_id, day in rows.order_by("day", "hosting_id").values_list("hosting_id", "day"):
        digest = error_digest_send(hosting_id=hosting_id, day=day)
        if digest is not None:
            outcome[digest.status] = outcome.get(digest.status, 0) + 1
    return outcome


def error_digests_send(*, day: datetime.date | None = None) -> dict[str, int]:
    """Send the digests of the local `day` (the previous day by default) for every hosting
    with delivery errors that day, and retry the unsent digests of the days before.

    Safe to run twice and from two processes at once: each digest goes out once.
    Returns {"sent": n, "failed": n}.
    """
    day = day or timezone.localdate() - datetime.timedelta(days=1)
    work = [(hosting_id, day) for hosting_id in hostings_with_errors_on(day=day)]
    earlier = ErrorDigest.objects.filter(
        day__lt=day, day__gte=day - datetime.timedelta(days=DIGEST_RETRY_DAYS)
    ).exclude(status=DigestStatus.SENT)
    work += list(earlier.order_by("day", "hosting_id").values_list("hosting_id", "day"))
    outcome = {"sent": 0, "failed": 0}
    for hosting_id, digest_day in work:
        digest = error_digest_send(hosting_id=hosting_id, day=digest_day)
        if digest is not None:
            outcome[digest.status] = outcome.get(digest.status, 0) + 1
    return outcome
