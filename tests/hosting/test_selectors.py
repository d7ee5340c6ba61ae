"""One door for tenancy: a user sees the hostings of their customers and nothing else."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from hosting.selectors import hosting_get_for_user, hostings_visible_to
from tests.factories import CustomerFactory, HostingFactory, MembershipFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tenants():
    """Three customers with hostings; `both` belongs to acme and globex, `alice` to acme only."""
    acme, globex, initech = CustomerFactory(), CustomerFactory(), CustomerFactory()
    hostings = {
        "acme": {HostingFactory(customer=acme), HostingFactory(customer=acme)},
        "globex": {HostingFactory(customer=globex)},
        "initech": {HostingFactory(customer=initech), HostingFactory(customer=initech)},
    }
    alice = MembershipFactory(customer=acme).user
    both = MembershipFactory(customer=acme).user
    MembershipFactory(customer=globex, user=both)
    MembershipFactory(customer=initech)  # another member elsewhere, to catch joins that multiply rows
    MembershipFactory(customer=acme)  # a second member of acme
    return hostings, alice, both


@pytest.mark.django_db
def test_member_sees_exactly_the_hostings_of_their_customer(tenants):
    hostings, alice, _both = tenants
    visible = list(hostings_visible_to(alice))
    assert len(visible) == len(set(visible))
    assert set(visible) == hostings["acme"]


@pytest.mark.django_db
def test_member_of_two_customers_sees_both_once(tenants):
    hostings, _alice, both = tenants
    visible = list(hostings_visible_to(both))
    assert len(visible) == 3  # no duplicates from the membership join
    assert set(visible) == hostings["acme"] | hostings["globex"]
    assert hostings_visible_to(both).count() == 3


@pytest.mark.django_db
def test_user_without_customer_sees_nothing(tenants):
    assert list(hostings_visible_to(UserFactory())) == []


@pytest.mark.django_db
def test_anonymous_user_sees_nothing(tenants):
    assert list(hostings_visible_to(AnonymousUser())) == []


@pytest.mark.django_db
def test_staff_without_membership_sees_nothing_through_the_customer_door(tenants):
    assert list(hostings_visible_to(UserFactory(is_staff=True, is_superuser=True))) == []


@pytest.mark.django_db
def test_hosting_get_for_user_returns_own_hosting(tenants):
    hostings, alice, _both = tenants
    own = next(iter(hostings["acme"]))
    found = hosting_get_for_user(user=alice, service_name=own.service_name)
    assert found == own
    assert found.customer == own.customer


@pytest.mark.django_db
def test_hosting_get_for_user_hides_other_customers_and_unknown_hostings(tenants):
    hostings, alice, both = tenants
    foreign = next(iter(hostings["globex"]))
    with pytest.raises(Http404):
        hosting_get_for_user(user=alice, service_name=foreign.service_name)
    with pytest.raises(Http404):
        hosting_get_for_user(user=alice, service_name="no-such-hosting.example")
    with pytest.raises(Http404):
        hosting_get_for_user(user=AnonymousUser(), service_name=foreign.service_name)
    # the same hosting is found by a member of its customer
    assert hosting_get_for_user(user=both, service_name=foreign.service_name) == foreign


@pytest.mark.django_db
def test_membership_removal_hides_the_hostings_at_once(tenants):
    hostings, _alice, both = tenants
    both.memberships.filter(customer__hostings__in=hostings["globex"]).delete()
    assert set(hostings_visible_to(both)) == hostings["acme"]
