"""The suppression list (SPEC §10.2): after a hard bounce, or a failure after the retry limit, a
hosting's mail no longer goes to that address for SUPPRESSION_DAYS. A later message to it is
accepted, and that recipient fails at once (`delivery`), without contacting the relay."""

import datetime
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from hosting.models import Hosting
from mailqueue.locks import mail_service_lock
from mailqueue.models import Action, DeliveryError, ErrorKind, Suppression
from mailqueue.state import Actor, event_record, mail_service_check

# Status codes saying the mailbox itself is gone or refuses the sender (RFC 3463): 5.1.x bad
# address, 5.2.1 mailbox disabled; 5.7.1 only when the recipient's server said it, in a report.
_HARD_SUBJECTS = ("5.1.",)
_HARD_CODES = {"5.2.1"}
_HARD_CODES_IN_REPORTS = {"5.7.1"}


def address_key(address: str) -> str:
    """The form an address is listed under: one entry per mailbox, whatever its case."""
    return address.strip().lower()


def error_suppresses(error: DeliveryError) -> bool:
    """Whether this delivery error puts its recipient on the list."""
    if error.kind == ErrorKind.SUPPRESSED:
        return False
    if not error.permanent:
        # A soft error is recorded only when the relay or the recipient's server gave up for good.
        return error.kind == ErrorKind.RELAY
    status = error.status
    if error.kind == ErrorKind.DSN and (not status or status in _HARD_CODES_IN_REPORTS):
        return True  # a report without status: a detector's "permanent failure" (flufl.bounce)
    return status.startswith(_HARD_SUBJECTS) or status in _HARD_CODES


def suppressions_add(errors: Iterable[DeliveryError]) -> int:
    """List the recipients of `errors` that suppress (or renew their entry) in one upsert;
    returns how many. Runs in the caller's transaction."""
    entries = {(error.hosting_id, address_key(error.recipient)): error for error in errors if error_suppresses(error)}
    if not entries:
        return 0
    rows = []
    for (hosting_id, address), error in sorted(entries.items()):  # one lock order between workers
        at = error.created_at or timezone.now()
        expires_at = at + datetime.timedelta(days=settings.SUPPRESSION_DAYS)
        rows.append(
            Suppression(
                hosting_id=hosting_id, address=address, created_at=at, expires_at=expires_at, reason=error.reply
            )
        )
    Suppression.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["hosting", "address"], update_fields=["expires_at", "reason"]
    )
    return len(entries)


def suppressions_active(
    *, pairs: Iterable[tuple[int, str]], now: datetime.datetime
) -> dict[tuple[int, str], Suppression]:
    """Which of these (hosting id, address) pairs are suppressed at `now`: one query."""
    pairs = {(hosting_id, address_key(address)) for hosting_id, address in pairs}
    if not pairs:
        return {}
    rows = Suppression.objects.filter(
        hosting_id__in={hosting_id for hosting_id, _address in pairs},
        address__in={address for _hosting_id, address in pairs},
        expires_at__gt=now,
    )
    return {(row.hosting_id, row.address): row for row in rows if (row.hosting_id, row.address) in pairs}


def suppressed_reply(suppression: Suppression, *, language: str) -> str:
    """The reply recorded for a recipient skipped because suppressed, in the customer's language."""
    with translation.override(language):
        day = formats.date_format(timezone.localtime(suppression.created_at), "SHORT_DATE_FORMAT")
        return _("recipient suppressed after a permanent error on %(date)s") % {"date": day}


def suppressions_remove(*, hosting: Hosting, addresses: Iterable[str], actor: Actor) -> int:
    """Take these addresses off the hosting's list (the next message goes to them again); one
    Event names them. Unknown addresses are ignored; returns how many entries were removed."""
    keys = sorted({address_key(address) for address in addresses})
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.UNSUPPRESS, actor)
        removed = list(Suppression.objects.filter(hosting=hosting, address__in=keys).values_list("address", flat=True))
        if not removed:
            return 0
        Suppression.objects.filter(hosting=hosting, address__in=removed).delete()
        event_record(
            service=service,
            action=Action.UNSUPPRESS,
            actor=actor,
            from_state=service.state,
            message_count=len(removed),
            detail=", ".join(sorted(removed))[:300],
        )
    return len(removed)
