"""manage.py create_api_credentials --customer SLUG."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_prints_four_working_lines(client, owner, hosting):
    out = io.StringIO()
    call_command("create_api_credentials", "--customer", owner[1].slug, stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "application_key",
        "application_secret",
        "consumer_key",
        "token",
    ]
    values = dict(line.split("=", 1) for line in lines)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16,}", value) for value in values.values())
    api = ApiClient(client, type("Printed", (), values))
    assert api.get("/hosting/web").json() == [hosting.service_name]
    assert api.get("/hosting/web", auth="bearer").json() == [hosting.service_name]


def test_unknown_customer_is_an_error(db):
    with pytest.raises(CommandError, match="no-such-customer"):
        call_command("create_api_credentials", "--customer", "no-such-customer", stdout=io.StringIO())
