import pytest

from hosting.selectors import hostings_visible_to
from tests.factories import HostingFactory, MembershipFactory


@pytest.mark.django_db
def test_member_sees_own_hosting_only():
    membership = MembershipFactory()
    own = HostingFactory(customer=membership.customer)
    HostingFactory()
    assert list(hostings_visible_to(membership.user)) == [own]
