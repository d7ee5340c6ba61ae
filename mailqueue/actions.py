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
REQUEST_SENT = _("La requête a été envoyée avec succès.")


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
            label=_("Bloquer l'envoi"),
            confirmation_text=_(
                "Vous êtes sur le point de bloquer la distribution des e-mails envoyés depuis votre hébergement "
                "WEB. Aucun e-mail ne sera supprimé, ils seront mis en attente pendant %(hold_hours)sH. Vous "
                "pourrez pendant cette période, soit débloquer l'envoi, soit le purger."
            ),
            outcome_text=_("Envoi bloqué : les e-mails sont mis en attente pendant %(hold_hours)s h."),
            admin_done_text=_("Envoi bloqué pour %(count)d hébergement(s)."),
            call=mail_service_block,
        ),
        CustomerAction(
            slug="unblock",
            api_name="UNBLOCK",
            action=Action.UNBLOCK,
            label=_("Débloquer l'envoi"),
            confirmation_text=_(
                "Vous êtes sur le point de débloquer l'envoi de vos e-mails. La distribution reprendra dès l'envoi "
                "du prochain e-mail. Les mails qui étaient bloqués seront remis en distribution."
            ),
            outcome_text=_("Envoi débloqué : les e-mails en attente sont remis en distribution."),
            admin_done_text=_("Envoi débloqué pour %(count)d hébergement(s)."),
            call=mail_service_unblock,
        ),
        CustomerAction(
            slug="purge",
            api_name="PURGE",
            action=Action.PURGE,
            label=_("Purger les e-mails"),
            confirmation_text=_(
                "Vous êtes sur le point d'effacer l'ensemble des e-mails en attente pour votre compte. Votre "
                "compte sera ensuite automatiquement débloqué. L'opération prend entre %(grace_minutes)s et "
                "%(deadline_minutes)s minutes."
            ),
            outcome_text=_(
                "Purge demandée : les e-mails en attente seront supprimés dans les %(deadline_minutes)s minutes."
            ),
            admin_done_text=_("Purge demandée pour %(count)d hébergement(s)."),
            call=mail_service_purge_request,
        ),
        CustomerAction(
            slug="cancel-purge",
            api_name="CANCEL_PURGE",
            action=Action.CANCEL_PURGE,
            label=_("Annuler la purge"),
            confirmation_text=_(
                "Vous êtes sur le point d'annuler la purge. Les e-mails en attente seront conservés et l'envoi "
                "restera bloqué."
            ),
            outcome_text=_("Purge annulée : les e-mails en attente sont conservés, l'envoi reste bloqué."),
            admin_done_text=_("Purge annulée pour %(count)d hébergement(s)."),
            call=mail_service_purge_cancel,
        ),
    )
}
CUSTOMER_ACTIONS_BY_API_NAME = {action.api_name: action for action in CUSTOMER_ACTIONS.values()}
