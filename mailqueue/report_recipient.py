"""Who receives the error reports (SPEC §3 "change recipient"); empty means the customer's contact."""

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue.addresses import email_address_valid
from mailqueue.locks import mail_service_lock
from mailqueue.models import Action, MailService
from mailqueue.state import Actor, MailServiceError, event_record, mail_service_check

INVALID_ADDRESS = _("The e-mail address is not valid.")


def mail_service_recipient_change(*, hosting: Hosting, actor: Actor, email: str | None) -> MailService:
    """Set the error-report recipient; empty (or None) means the customer's contact e-mail.
    An invalid address raises MailServiceError (code `invalid`) and changes nothing."""
    email = (email or "").strip()
    if email and not email_address_valid(email):
        raise MailServiceError(INVALID_ADDRESS, code="invalid")
    with transaction.atomic():
        service = mail_service_lock(hosting_id=hosting.pk)
        mail_service_check(service, Action.CHANGE_RECIPIENT, actor)
        old = service.report_recipient
        service.report_recipient = email
        service.save(update_fields=["report_recipient"])
        event_record(
            service=service,
            action=Action.CHANGE_RECIPIENT,
            actor=actor,
            from_state=service.state,
            detail=f"{old or '-'} → {email or '-'}",
        )
    return service
