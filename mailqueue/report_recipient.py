"""Who receives the error reports (SPEC §3 "change recipient"); empty means the customer's contact."""

from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue.addresses import email_address_valid
from mailqueue.models import Action, MailService
from mailqueue.state import Actor, MailServiceError, mail_service_setting_change

INVALID_ADDRESS = _("The e-mail address is not valid.")


def mail_service_recipient_change(*, hosting: Hosting, actor: Actor, email: str | None) -> MailService:
    """Set the error-report recipient; empty (or None) means the customer's contact e-mail.
    An invalid address raises MailServiceError (code `invalid`) and changes nothing."""
    email = (email or "").strip()
    if email and not email_address_valid(email):
        raise MailServiceError(INVALID_ADDRESS, code="invalid")
    return mail_service_setting_change(
        hosting=hosting, actor=actor, action=Action.CHANGE_RECIPIENT, field="report_recipient", value=email
    )
