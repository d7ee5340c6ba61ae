"""Fixtures of the mail queue's tests: a real spamd (tests/spamd.py), and customers logged in to
the portal's pages (in English, their source language)."""

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import HostingFactory, MembershipFactory
from tests.spamd import spamd, spamd_factory  # noqa: F401


def customer_logged_in():
    """A customer's user logged in (the pages in English), their hosting, and their client."""
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    client = Client()
    client.force_login(membership.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return membership.user, hosting, client


@pytest.fixture
def owner():
    return customer_logged_in()


@pytest.fixture
def stranger():
    """Another customer, to check that the owner's pages are a 404 to them."""
    return customer_logged_in()
