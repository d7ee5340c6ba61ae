"""A hosting is provisioned with its mail service (every hosting has its MailService row) and
its DKIM key (SPEC §11.2)."""

from django.db import transaction

from hosting.models import Customer, Hosting, Plan
from hosting.services import hosting_create
from mailqueue.dkim_keys import dkim_key_create
from mailqueue.models import MailService


def mail_service_create(*, hosting: Hosting) -> MailService:
    """The hosting's mail service, active with the plan's limits, and its DKIM key (idempotent)."""
    service, _created = MailService.objects.get_or_create(hosting=hosting)
    dkim_key_create(hosting=hosting)
    return service


@transaction.atomic
def hosting_provision(*, service_name: str, customer: Customer, plan: str = Plan.PERSO) -> tuple[Hosting, str]:
    """Create a hosting, its mail service and its DKIM key; return the hosting and its first SMTP
    password (shown once). The one way hostings are made: the command, the admin, the demo data."""
    hosting, password = hosting_create(service_name=service_name, customer=customer, plan=plan)
    mail_service_create(hosting=hosting)
    return hosting, password
