"""The null sender `MAIL FROM:<>` is one rule of the submission service, the same at every door.

A null reverse-path marks bounces and delivery reports (RFC 5321 §4.5.5): a hosting's scripts have
no reason to send them, and a message nobody can answer is refused with 553 5.7.1 everywhere.
"""

import smtplib

import pytest
from django.test import Client

from api.services import api_credentials_create
from mailqueue.models import Message
from mailqueue.smtpd import SubmissionHandler, smtp_text
from tests.api.conftest import ApiClient
from tests.factories import HostingFactory
from tests.support import SubmissionDoor

pytestmark = pytest.mark.django_db(transaction=True)

RAW = "From: shop@example.net\r\nTo: client@example.org\r\nSubject: Delivery report\r\n\r\nHi\r\n"


@pytest.fixture
def door():
    with SubmissionDoor(addr="127.0.0.1:0", handler=SubmissionHandler(db_threads=1)) as running:
        yield running


@pytest.fixture
def hosting():
    return HostingFactory()


def smtp_null_sender(door, hosting) -> tuple[int, bytes]:
    with smtplib.SMTP(door.host, door.port, timeout=10) as client:
        client.login(hosting.service_name, hosting.smtp_password)
        code, reply = client.mail("")  # smtplib sends MAIL FROM:<>
        assert client.noop()[0] == 250, "the session goes on"
        return code, reply


def api_submit(hosting, **fields):
    api = ApiClient(Client(), api_credentials_create(customer=hosting.customer))
    body = {"recipients": ["client@example.org"], "message": RAW, **fields}
    return api.post(f"/hosting/web/{hosting.service_name}/email/messages", body)


def test_smtp_door_refuses_the_null_sender_with_553_5_7_1(door, hosting):
    code, reply = smtp_null_sender(door, hosting)
    assert (code, reply[:5]) == (553, b"5.7.1")
    assert b"<>" in reply
    assert not Message.objects.exists()


@pytest.mark.parametrize("sender", [{"sender": ""}, {"sender": "<>"}, {"sender": " "}, {}], ids=repr)
def test_api_refuses_the_null_sender_as_the_smtp_door_does(door, hosting, sender):
    response = api_submit(hosting, **sender)
    assert response.status_code == 400
    assert response.json()["smtpCode"] == 553
    assert not Message.objects.exists()
    code, reply = smtp_null_sender(door, hosting)
    assert f"{code} {reply.decode()}" == smtp_text(f"553 5.7.1 {response.json()['message']}"), "same code and text"


def test_a_real_sender_is_still_accepted_at_both_doors(door, hosting):
    assert api_submit(hosting, sender="shop@example.net").status_code == 201
    with smtplib.SMTP(door.host, door.port, timeout=10) as client:
        client.login(hosting.service_name, hosting.smtp_password)
        assert client.sendmail("shop@example.net", ["client@example.org"], RAW.encode()) == {}
    assert Message.objects.count() == 2
