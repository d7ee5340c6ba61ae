"""Who a hosting may send as (SPEC §11.2), at every door: the default `own-domains`, domains an
operator allowed, `any`, and another tenant's domain refused in every mode."""

import smtplib

import pytest

from mailqueue.models import Event, Message
from mailqueue.sender_policy import mail_service_sender_domains_set
from mailqueue.state import Actor, MailServiceError
from mailqueue.submission import SubmissionError, message_accept
from tests.factories import CustomerFactory, HostingFactory, UserFactory
from tests.support import SubmissionDoor

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_domains(settings):
    settings.SENDER_POLICY = "own-domains"  # the default (the suite runs with `any`, see pyproject.toml)


@pytest.fixture
def tenants():
    acme = CustomerFactory()
    shop = HostingFactory(service_name="acme-shop.fr", customer=acme)
    blog = HostingFactory(service_name="acme-blog.fr", customer=acme)
    globex = HostingFactory(service_name="globex.com", customer=CustomerFactory())
    return shop, blog, globex


def accept(hosting, *, sender, from_header=None):
    raw = f"From: {from_header or sender}\r\nTo: client@example.org\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    return message_accept(hosting=hosting, sender=sender, recipients=["client@example.org"], raw=raw)


def refusal(hosting, **fields) -> SubmissionError:
    with pytest.raises(SubmissionError) as caught:
        accept(hosting, **fields)
    return caught.value


def test_by_default_a_hosting_sends_as_its_domain_and_its_subdomains_only(own_domains, tenants):
    shop, _blog, _globex = tenants
    accept(shop, sender="shop@acme-shop.fr")
    accept(shop, sender="news@mail.ACME-SHOP.fr", from_header="Boutique <news@mail.acme-shop.fr>")

    error = refusal(shop, sender="someone@gmail.example")
    assert (error.smtp_code, error.enhanced_code) == (550, "5.7.1")
    assert "gmail.example" in str(error.message) and "acme-shop.fr" in str(error.message)
    # The From: header counts as much as the envelope.
    assert "gmail.example" in str(refusal(shop, sender="shop@acme-shop.fr", from_header="ceo@gmail.example").message)
    assert Message.objects.count() == 2  # nothing refused was stored


def test_another_tenants_domain_is_refused_in_every_mode(settings, tenants):
    shop, _blog, _globex = tenants
    for policy in ("own-domains", "any"):
        settings.SENDER_POLICY = policy
        assert refusal(shop, sender="ceo@globex.com").smtp_code == 550
        assert refusal(shop, sender="shop@acme-shop.fr", from_header="CEO <ceo@mail.globex.com>").smtp_code == 550
    settings.SENDER_POLICY = "any"
    accept(shop, sender="someone@gmail.example")  # not a tenant's
    accept(shop, sender="me@acme-blog.fr")  # the same customer's other hosting


def test_an_operator_allows_an_extra_domain_and_it_is_an_event(own_domains, tenants):
    shop, _blog, _globex = tenants
    operator = UserFactory(is_staff=True)
    mail_service_sender_domains_set(hosting=shop, actor=Actor.operator(operator), domains=["Acme-Group.example"])
    accept(shop, sender="hr@acme-group.example")
    accept(shop, sender="hr@paris.acme-group.example")
    assert Event.objects.get(hosting=shop, action="sender_domains").detail == "[] → ['acme-group.example']"

    with pytest.raises(MailServiceError):  # another customer's hosting cannot be given away
        mail_service_sender_domains_set(hosting=shop, actor=Actor.operator(operator), domains=["globex.com"])
    with pytest.raises(MailServiceError):  # customers do not choose it
        mail_service_sender_domains_set(hosting=shop, actor=Actor.customer(UserFactory()), domains=["x.example"])


@pytest.mark.django_db(transaction=True)
def test_the_smtp_door_refuses_with_a_clear_text(own_domains, tenants):
    shop, _blog, _globex = tenants
    with SubmissionDoor(addr="127.0.0.1:0") as door, smtplib.SMTP(door.host, door.port, timeout=10) as smtp:
        smtp.login(shop.service_name, shop.smtp_password)
        with pytest.raises(smtplib.SMTPDataError) as caught:
            smtp.sendmail("ceo@globex.com", ["client@example.org"], b"From: ceo@globex.com\r\nSubject: x\r\n\r\nhi\r\n")
    assert caught.value.smtp_code == 550
    # The door speaks the default language, folded to ASCII as SMTP wants.
    refused = b"5.7.1 L'envoi en tant que globex.com n'est pas autorise pour acme-shop.fr"
    assert caught.value.smtp_error.startswith(refused)
    assert not Message.objects.exists()
