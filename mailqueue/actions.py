"""The four actions a customer can ask for (SPEC §3, §5, §7), in one table that the portal,
the admin and the API all read: the label, the confirmation, what is said once it is done,
and the service call. Texts naming durations are built from the settings when shown."""

import dataclasses
import math
from collections.abc import Callable

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from mailqueue.blocking import mail_service_block, mail_service_unblock
from mailqueue.models import Action, MailService
from mailqueue.purge import PURGE_DEADLINE, mail_service_purge_cancel, mail_service_purge_request

# What the portal says after any accepted request (SPEC §5).
REQUEST_SENT = _("Your request has been sent successfully.")


def _durations() -> dict:
    return {
        "hold_hours": settings.HOLD_HOURS,
        "grace_minutes": math.ceil(settings.PURGE_GRACE_SECONDS / 60),  # never promise less than the wait
        "deadline_minutes": round(PURGE_DEADLINE.total_seconds() / 60),
    }


@dataclasses.dataclass(frozen=True)
class CustomerAction:
    slug: str  # in the portal's URLs
    api_name: str  # OVH's hosting.web.mail.ActionEnum
    action: Action
    label: str  # the button, the confirmation's title, the admin action
    confirmation_text: str  # the reference UI's confirmation (SPEC §5), with %(…)s durations
    outcome_text: str  # what happened, as the API answers it, with %(…)s durations
    admin_done_text: str  # the admin's report, with %(count)d hostings
    call: Callable[..., MailService]  # (*, hosting, actor) → the service
    # The portal's confirmation buttons: Valider / Annuler, unless that would be ambiguous.
    confirm_label: str = _("Confirm")
    dismiss_label: str = _("Cancel")
    # What the portal adds after the reference text, where that text says less than what happens.
    note: str = ""

    def confirmation(self) -> str:
        return self.confirmation_text % _durations()

    def outcome(self) -> str:
        return self.outcome_text % _durations()


CUSTOMER_ACTIONS: dict[str, CustomerAction] = {
    action.slug: action
    for action in (
        CustomerAction(
            slug="block",
            api_name="BLOCK",
            action=Action.BLOCK,
            label=_("Block sending"),
            confirmation_text=_(
                "You are about to block the delivery of e-mails sent from your web hosting. No e-mail will be "
                "deleted: they will be held for %(hold_hours)s hours. During this period, you can either unblock "
                "sending or purge them."
            ),
            outcome_text=_("Sending blocked: messages are held for %(hold_hours)s h."),
            admin_done_text=_("Sending blocked for %(count)d hosting(s)."),
            call=mail_service_block,
        ),
        CustomerAction(
            slug="unblock",
            api_name="UNBLOCK",
            action=Action.UNBLOCK,
            label=_("Unblock sending"),
            confirmation_text=_(
                "You are about to unblock the sending of your e-mails. Delivery will resume as soon as the next "
                "e-mail is sent. The e-mails that were blocked will be delivered again."
            ),
            outcome_text=_("Sending unblocked: held messages are delivered again."),
            admin_done_text=_("Sending unblocked for %(count)d hosting(s)."),
            call=mail_service_unblock,
            note=_(
                "In fact you need not wait for a new e-mail: the held e-mails go back to delivery at once, by "
                "themselves, within the hourly limit."
            ),
        ),
        CustomerAction(
            slug="purge",
            api_name="PURGE",
            action=Action.PURGE,
            label=_("Purge e-mails"),
            confirmation_text=_(
                "You are about to delete all the held e-mails of your account. Your account will then be unblocked "
                "automatically. The operation takes between %(grace_minutes)s and %(deadline_minutes)s minutes."
            ),
            outcome_text=_("Purge requested: held messages will be deleted within %(deadline_minutes)s minutes."),
            admin_done_text=_("Purge requested for %(count)d hosting(s)."),
            call=mail_service_purge_request,
        ),
        CustomerAction(
            slug="cancel-purge",
            api_name="CANCEL_PURGE",
            action=Action.CANCEL_PURGE,
            label=_("Cancel the purge"),
            confirmation_text=_(
                "You are about to cancel the purge. The held e-mails will be kept and sending will remain blocked."
            ),
            outcome_text=_("Purge cancelled: held messages are kept, sending stays blocked."),
            admin_done_text=_("Purge cancelled for %(count)d hosting(s)."),
            call=mail_service_purge_cancel,
            # « Valider / Annuler » would read "confirm / cancel the cancellation".
            confirm_label=_("Cancel the purge"),
            dismiss_label=_("Continue the purge"),
        ),
    )
}
CUSTOMER_ACTIONS_BY_API_NAME = {action.api_name: action for action in CUSTOMER_ACTIONS.values()}
