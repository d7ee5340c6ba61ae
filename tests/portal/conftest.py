"""Customer portal fixtures: a customer's user logged in, their hosting, and another customer's."""

import dataclasses

import pytest
from django.test import Client

from mailqueue.models import Event, MailService, Suppression
from tests.factories import HostingFactory, MembershipFactory


@dataclasses.dataclass
class Tenant:
    user: object
    customer: object
    hosting: object
    client: Client


def _tenant(**hosting_fields) -> Tenant:
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer, **hosting_fields)
    client = Client()
    client.force_login(membership.user)
    return Tenant(membership.user, membership.customer, hosting, client)


@pytest.fixture
def tenant() -> Tenant:
    """The customer's user, logged in, and their one hosting."""
    return _tenant()


@pytest.fixture
def stranger() -> Tenant:
    """Another customer, with a hosting the tenant must never reach."""
    return _tenant()


def snapshot(hosting) -> dict:
    """Everything a portal request could change on a hosting, to prove that nothing did."""
    service = MailService.objects.get(hosting=hosting)
    hosting.refresh_from_db()
    return {
        "state": service.state,
        "block_reason": service.block_reason,
        "report_recipient": service.report_recipient,
        "purge_requested_at": service.purge_requested_at,
        "purge_due_at": service.purge_due_at,
        "smtp_password_hash": hosting.smtp_password_hash,
        "events": list(Event.objects.filter(hosting=hosting).values_list("id", flat=True)),
        "suppressions": list(Suppression.objects.filter(hosting=hosting).values_list("address", flat=True)),
    }


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in almost every test here: a cheap hasher keeps the module fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
