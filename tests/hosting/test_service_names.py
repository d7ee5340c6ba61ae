"""Service names are host names in one canonical form: one name, one hosting, whatever its case.

`provision_hosting` used to create `ACME-SHOP.FR` for another customer (the admin's search for
acme-shop.fr then showed that customer's mail), `acme-shop.fr.`, a Cyrillic homoglyph,
`a/b.fr`, `a b.fr` and an empty name (its owner's home page then answered 500).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from hosting.models import Hosting
from tests.admin.conftest import hidden_inputs, logged_in, page_text, staff_user
from tests.factories import CustomerFactory, HostingFactory, MembershipFactory
from tests.support import shared_database_url

pytestmark = pytest.mark.django_db(transaction=True)

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def provision(service_name: str, customer: str) -> subprocess.CompletedProcess:
    """`manage.py provision_hosting` as an operator runs it, on the test database."""
    return subprocess.run(
        [sys.executable, str(MANAGE), "provision_hosting", service_name, "--customer", customer],
        env=os.environ | {"DATABASE_URL": shared_database_url()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def acme_shop():
    """acme-shop.fr of customer acme; globex is another customer, whose member is logged in."""
    hosting = HostingFactory(service_name="acme-shop.fr", customer=CustomerFactory(slug="acme"))
    globex = CustomerFactory(slug="globex")
    member = MembershipFactory(customer=globex).user
    HostingFactory(service_name="globex.com", customer=globex)
    return hosting, member


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "est vide"),
        ("a/b.fr", "contient « / »"),
        ("a b.fr", "contient un espace"),
        ("\u0430cme-shop.fr", "mélange plusieurs écritures (cyrillic, latin)"),  # Cyrillic а
        ("xn--cme-shop-06g.fr", "mélange plusieurs écritures"),  # the same, as its A-label
        ("acme-shop.fr..", "n'est pas un nom d'hôte valide"),
        ("acme-.fr", "n'est pas un nom d'hôte valide"),
        ("acme_shop.fr", "contient « _ »"),
        ("localhost", "n'a qu'un label"),
        ("192.0.2.1", "est une adresse IP"),
    ],
    ids=[
        "empty",
        "slash",
        "space",
        "homoglyph",
        "homoglyph-a-label",
        "two-dots",
        "hyphen",
        "underscore",
        "one-label",
        "ip",
    ],
)
def test_provision_refuses_what_is_not_a_host_name(acme_shop, name, reason):
    _hosting, member = acme_shop
    result = provision(name, "globex")

    assert result.returncode != 0
    assert reason in result.stderr
    assert result.stdout == ""
    assert sorted(Hosting.objects.values_list("service_name", flat=True)) == ["acme-shop.fr", "globex.com"]
    client = Client()
    client.force_login(member)
    assert client.get("/").status_code == 200, "the owner's home page lists valid names only"


@pytest.mark.parametrize("name", ["ACME-SHOP.FR", "acme-shop.fr.", "Acme-Shop.Fr."])
def test_another_customer_cannot_take_a_name_in_another_case(acme_shop, name):
    hosting, _member = acme_shop
    result = provision(name, "globex")

    assert result.returncode != 0
    assert "acme-shop.fr belongs to another customer" in result.stderr
    assert Hosting.objects.filter(service_name__iexact="acme-shop.fr").get() == hosting


def test_the_owner_provisioning_another_case_rotates_the_same_hosting(acme_shop):
    hosting, _member = acme_shop
    result = provision("ACME-SHOP.FR.", "acme")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "smtp_user=acme-shop.fr"
    assert Hosting.objects.filter(service_name__iexact="acme-shop.fr").get().smtp_password_hash != (
        hosting.smtp_password_hash
    ), "the password was rotated"


def test_international_names_are_stored_as_their_a_label(acme_shop):
    created = provision("Bücher.fr", "globex")
    again = provision("xn--bcher-kva.fr", "globex")

    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines()[0] == "smtp_user=xn--bcher-kva.fr"
    assert again.returncode == 0, again.stderr
    assert Hosting.objects.filter(service_name="xn--bcher-kva.fr").count() == 1
    whole_cyrillic = provision("пример.рф", "globex")  # one script: valid, shown as xn--, never as a look-alike
    assert whole_cyrillic.stdout.splitlines()[0] == "smtp_user=xn--e1afmkfd.xn--p1ai"


def test_the_database_refuses_a_second_name_differing_in_case(acme_shop):
    with pytest.raises(IntegrityError), transaction.atomic():
        Hosting.objects.create(service_name="ACME-SHOP.FR", customer=CustomerFactory())


def test_the_admin_add_form_checks_names_as_provisioning_does(acme_shop):
    hosting, _member = acme_shop
    admin = logged_in(staff_user("root", is_superuser=True))
    form = {**hidden_inputs(admin.get("/admin/hosting/hosting/add/")), "customer": hosting.customer.pk, "plan": "perso"}

    taken = admin.post("/admin/hosting/hosting/add/", {**form, "service_name": "ACME-SHOP.FR"})
    spoof = admin.post("/admin/hosting/hosting/add/", {**form, "service_name": "\u0430cme-shop.fr"})
    created = admin.post("/admin/hosting/hosting/add/", {**form, "service_name": "Bücher.FR."})

    assert taken.status_code == 200
    assert "Le nom de service acme-shop.fr est déjà pris." in page_text(taken)
    assert spoof.status_code == 200
    assert "mélange plusieurs écritures" in page_text(spoof)
    assert created.status_code == 302
    assert sorted(Hosting.objects.values_list("service_name", flat=True)) == [
        "acme-shop.fr",
        "globex.com",
        "xn--bcher-kva.fr",
    ]


NUL_URLS = [
    "/?next=%00",
    "/hostings/a%00b/",
    "/hostings/acme-shop.fr/emails/?limit=20%00",
    "/hostings/acme-shop.fr%00/emails/",
    "/accounts/login/?next=/%00",
    "/1.0/hosting/web/acme-shop.fr%00/email",
    "/admin/mailqueue/message/?status__exact=held%00",
    "/admin/hosting/hosting/?q=acme%00",
    "/admin/hosting/hosting/%00/change/",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_byte_in_the_url_is_a_404(acme_shop, url):
    hosting, _member = acme_shop
    owner = MembershipFactory(customer=hosting.customer).user
    for user in (owner, staff_user("root", is_superuser=True)):
        client = Client(raise_request_exception=False)
        client.force_login(user)
        assert client.get(url).status_code == 404, (user.username, url)
