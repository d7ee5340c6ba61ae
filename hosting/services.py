"""Writes of the hosting app: customers, memberships, hostings and their SMTP password."""

import hashlib
import hmac
import secrets

from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Customer, Hosting, Membership, Plan
from hosting.names import ServiceNameError, service_name_normalize


def _smtp_password_digest(password: str) -> str:
    return "sha256$" + hashlib.sha256(password.encode()).hexdigest()


def smtp_password_matches(*, hosting: Hosting, password: str) -> bool:
    """Constant-time check of `password` against the hosting's stored digest."""
    if not hosting.smtp_password_hash:
        return False
    return hmac.compare_digest(hosting.smtp_password_hash, _smtp_password_digest(password))


def hosting_smtp_password_rotate(*, hosting: Hosting) -> str:
    """Generate a new SMTP password, store only its digest, return it (shown once).

    It never starts with "-" or "_": command-line tools (swaks, sendmail wrappers) would read a
    leading dash as an option."""
    password = secrets.token_urlsafe(24)
    while password[0] in "-_":
        password = secrets.token_urlsafe(24)
    hosting.smtp_password_hash = _smtp_password_digest(password)
    hosting.smtp_password_changed_at = timezone.now()
    hosting.save(update_fields=["smtp_password_hash", "smtp_password_changed_at"])
    return password


def hosting_service_name_clean(*, service_name: str, exclude_pk: int | None = None) -> str:
    """`service_name` in canonical form (hosting.names), free for a new hosting (or for the hosting
    `exclude_pk`, being renamed); ServiceNameError saying why not otherwise."""
    name = service_name_normalize(service_name)
    taken = Hosting.objects.alias(name_lower=Lower("service_name")).filter(name_lower=name)
    if taken.exclude(pk=exclude_pk).exists():
        raise ServiceNameError(_("The service name %(name)s is already taken.") % {"name": name})
    return name


@transaction.atomic
def hosting_create(*, service_name: str, customer: Customer, plan: str = Plan.PERSO) -> tuple[Hosting, str]:
    """Create a hosting under the canonical form of `service_name`; return it and its first SMTP
    password (mailqueue adds the mail service). ServiceNameError, nothing created, when the name
    is not a host name or is taken in any case ("ACME-SHOP.FR" for "acme-shop.fr")."""
    name = hosting_service_name_clean(service_name=service_name)
    hosting = Hosting.objects.create(service_name=name, customer=customer, plan=Plan(plan))
    return hosting, hosting_smtp_password_rotate(hosting=hosting)


def membership_add(*, customer: Customer, user) -> Membership:
    membership, _ = Membership.objects.get_or_create(customer=customer, user=user)
    return membership
