"""The DKIM and SPF page (SPEC §11.2): the record shown is the one signatures verify against;
the rotation is confirmed first; another customer's hosting is a 404."""

import re

import dkim
import pytest

from mailqueue.dkim_keys import dkim_key_create
from mailqueue.dkim_signing import Signer
from mailqueue.models import DkimKey
from tests.factories import HostingFactory, MembershipFactory

pytestmark = pytest.mark.django_db

RAW = b"From: shop@acme-shop.fr\r\nTo: a@example.org\r\nSubject: Order\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\n\r\nHi\r\n"  # noqa: E501


@pytest.fixture
def customer_client(client):
    membership = MembershipFactory()
    hosting = HostingFactory(service_name="acme-shop.fr", customer=membership.customer)
    client.force_login(membership.user)
    return client, hosting


def shown_records(page: str) -> dict[str, str]:
    """Name → value of the records as the page shows them."""
    names = re.findall(r"<dt>Nom</dt><dd><code>([^<]+)</code>", page) or re.findall(
        r"<dt>Name</dt><dd><code>([^<]+)</code>", page
    )
    values = re.findall(r'<code class="wrap">([^<]+)</code>', page)
    return dict(zip(names, values, strict=True))


def test_the_record_shown_verifies_the_signatures_made(customer_client):
    client, hosting = customer_client
    page = client.get(f"/hostings/{hosting.service_name}/smtp/dkim/")
    assert page.status_code == 200
    records = shown_records(page.content.decode())
    [key] = DkimKey.objects.filter(hosting=hosting)  # made on the first visit for an older hosting
    assert list(records) == [f"{key.selector}._domainkey.acme-shop.fr"]
    assert "v=spf1 include:" in page.content.decode()

    signed = Signer({hosting.pk: hosting.service_name}).sign(hosting.pk, RAW)
    lookup = {name + ".": value.encode() for name, value in records.items()}
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: lookup.get(name.decode()))


def test_rotation_asks_first_then_keeps_the_old_record_listed(customer_client):
    client, hosting = customer_client
    old = dkim_key_create(hosting=hosting)
    confirmation = client.get(f"/hostings/{hosting.service_name}/smtp/dkim/?rotate=1")
    assert DkimKey.objects.filter(hosting=hosting).count() == 1  # nothing changed yet
    assert 'method="post"' in confirmation.content.decode()

    response = client.post(f"/hostings/{hosting.service_name}/smtp/dkim/", follow=True)
    assert response.status_code == 200
    new = DkimKey.objects.get(hosting=hosting, retired_at__isnull=True)
    assert new.selector != old.selector
    assert set(shown_records(response.content.decode())) == {
        f"{new.selector}._domainkey.acme-shop.fr",
        f"{old.selector}._domainkey.acme-shop.fr",
    }


def test_another_customers_hosting_is_a_404_and_rotates_nothing(client):
    other = HostingFactory()
    key = dkim_key_create(hosting=other)
    member = MembershipFactory()
    client.force_login(member.user)
    assert client.get(f"/hostings/{other.service_name}/smtp/dkim/").status_code == 404
    assert client.post(f"/hostings/{other.service_name}/smtp/dkim/").status_code == 404
    assert list(DkimKey.objects.filter(hosting=other)) == [key]
