"""The hourly limit (SPEC §4.2): the plan's or an operator's, counted over a rolling hour of
hand-offs to the relay. It delays messages, it never rejects them.

The effective limit is `MailService.hourly_limit` (Python) and
`MailService.objects.with_hourly_limit()` (SQL), side by side in models.py.
"""

import datetime
import uuid

from django.db.models import F, Min, Sum
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue.locks import LockPurpose, advisory_lock
from mailqueue.models import Action, MailService, RelayHandoff
from mailqueue.state import Actor, MailServiceError, mail_service_setting_change

HOUR = datetime.timedelta(hours=1)
LIMIT_MAX = 1_000_000


def mail_service_limit_set(*, hosting: Hosting, actor: Actor, limit: int | None) -> MailService:
    """Override the plan's hourly limit (None: back to the plan's); operators only."""
    if limit is not None and (not isinstance(limit, int) or limit < 1 or limit > LIMIT_MAX):
        raise MailServiceError(_("The limit must be a whole number between 1 and 1,000,000."), code="invalid")
    return mail_service_setting_change(
        hosting=hosting, actor=actor, action=Action.SET_LIMIT, field="hourly_limit_override", value=limit
    )


def hourly_limits_of(hosting_ids) -> dict[int, int]:
    """The effective hourly limit of each of these hostings."""
    return dict(
        MailService.objects.filter(hosting_id__in=hosting_ids)
        .with_hourly_limit()
        .values_list("hosting_id", "effective_hourly_limit")
    )


def hourly_usage_lock(hosting_ids) -> None:
    """Serialise concurrent claims' counting per hosting (PostgreSQL), so together they never
    exceed its limit; SQLite transactions are serialised already."""
    advisory_lock(LockPurpose.HOURLY_LIMIT, hosting_ids)


def hourly_usage(hosting_ids, *, now: datetime.datetime) -> dict[int, dict]:
    """Per hosting: hand-offs of the rolling hour (`used`) and the oldest of them (`oldest`)."""
    return {
        row["hosting_id"]: row
        for row in RelayHandoff.objects.filter(hosting_id__in=hosting_ids, at__gt=now - HOUR)
        .values("hosting_id")
        .annotate(used=Sum("count"), oldest=Min("at"))
    }


def handoffs_record(per_hosting: dict[int, int], *, at: datetime.datetime, token: uuid.UUID) -> None:
    """Count `per_hosting[hosting_id]` messages of the claim `token` handed to the relay at `at`:
    one row per hosting."""
    RelayHandoff.objects.bulk_create(
        [
            RelayHandoff(hosting_id=hosting_id, at=at, claim_token=token, count=count)
            for hosting_id, count in per_hosting.items()
            if count
        ]
    )


def handoffs_return(*, token: uuid.UUID, per_hosting: dict[int, int]) -> None:
    """`per_hosting[hosting_id]` messages of the claim `token` not delivered by it (an outage, a
    dead worker) give back their place in the hourly limit: they take a new one when claimed again.
    Inside the caller's transaction (the rows are locked until it ends)."""
    for hosting_id, count in per_hosting.items():
        rows = RelayHandoff.objects.select_for_update().filter(hosting_id=hosting_id, claim_token=token)
        for pk, taken in rows.order_by("-at", "-id").values_list("pk", "count"):
            if count <= 0:
                break
            if taken <= count:
                RelayHandoff.objects.filter(pk=pk).delete()
            else:
                RelayHandoff.objects.filter(pk=pk).update(count=F("count") - count)
            count -= taken
