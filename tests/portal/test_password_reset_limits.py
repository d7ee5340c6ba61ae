"""Password reset sends at most PASSWORD_RESET_LIMIT e-mails per client address and per e-mail
address in PASSWORD_RESET_WINDOW, and says the same neutral thing either way.

Before, 15 POSTs of the reset form sent 15 e-mails: a mailbox (or the platform's mailer) could
be flooded from one address, or from many addresses at one mailbox.
"""

import datetime
import html
import re

import pytest
import time_machine
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/accounts/password_reset/"


def reset(email: str, address: str):
    return Client().post(URL, {"email": email}, REMOTE_ADDR=address, follow=True)


def shown_text(response) -> str:
    body = re.search(r"<main.*?</main>", response.content.decode(), re.S)
    return html.unescape(re.sub(r"<[^>]+>|\s+", " ", body.group(0) if body else response.content.decode()))


def test_fifteen_requests_from_one_address_send_five_e_mails(mailoutbox, settings):
    users = [UserFactory() for _ in range(15)]

    responses = [reset(user.email, "198.51.100.7") for user in users]

    assert settings.PASSWORD_RESET_LIMIT == 5
    assert len(mailoutbox) == 5
    assert [message.to for message in mailoutbox] == [[user.email] for user in users[:5]]
    assert {response.redirect_chain[-1] for response in responses} == {("/accounts/password_reset/done/", 302)}
    assert len({shown_text(response) for response in responses}) == 1, "limited or not, the page says the same"


def test_fifteen_requests_for_one_mailbox_from_many_addresses_send_five(mailoutbox):
    user = UserFactory()

    for number in range(15):
        reset(user.email.upper() if number % 2 else user.email, f"203.0.113.{number + 1}")

    assert len(mailoutbox) == 5
    assert all(message.to == [user.email] for message in mailoutbox)


def test_unknown_addresses_count_too_and_the_window_ends(mailoutbox, settings):
    user = UserFactory()
    with time_machine.travel(datetime.datetime(2026, 12, 1, 10, 0, 5, tzinfo=datetime.UTC), tick=False):
        for _ in range(5):
            reset("nobody@nowhere.example", "192.0.2.44")  # sends nothing, counts for the address
        reset(user.email, "192.0.2.44")
        assert mailoutbox == []
    with time_machine.travel(datetime.datetime(2026, 12, 1, 11, 0, 6, tzinfo=datetime.UTC), tick=False):
        reset(user.email, "192.0.2.44")
    assert [message.to for message in mailoutbox] == [[user.email]]
    assert settings.PASSWORD_RESET_WINDOW == 3600
