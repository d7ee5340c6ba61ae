"""Operators' admin fixtures: the two roles of migration 0003 and a superuser, logged in."""

import html
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from tests.factories import UserFactory

HOSTINGS_URL = "/admin/hosting/hosting/"


def role(group_name: str) -> Group:
    """A role of mailqueue 0003_roles, made again as it makes it when a transactional test's flush
    emptied the table (the flush makes the permissions again, not the groups)."""
    group, created = Group.objects.get_or_create(name=group_name)
    if created:
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label__in=["hosting", "mailqueue", "reports"], codename__startswith="view_"
            )
        )
        if group_name == "Operators":
            group.permissions.add(Permission.objects.get(codename="act_on_mailservice"))
    return group


def staff_user(username: str, group_name: str | None = None, **fields):
    user = UserFactory(username=username, is_staff=True, **fields)
    if group_name:
        user.groups.add(role(group_name))
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator():
    return staff_user("olivia", "Operators")


@pytest.fixture
def support():
    return staff_user("sam", "Support")


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


@pytest.fixture
def support_client(support):
    return logged_in(support)


@pytest.fixture
def superuser_client():
    return logged_in(staff_user("root", is_superuser=True))


def shown_messages(response) -> list[str]:
    """The texts of the admin's message list, as the operator reads them."""
    items = re.findall(r'<li class="(?:success|error|warning|info)">(.*?)</li>', response.content.decode(), re.S)
    return [html.unescape(item).strip() for item in items]


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def run_action(client, action: str, hostings, **fields):
    """Submit the hosting changelist's action form as the browser does, following the redirect."""
    data = {"action": action, "_selected_action": [hosting.pk for hosting in hostings], "index": "0", **fields}
    return client.post(HOSTINGS_URL, data, follow=True)


def hidden_inputs(response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.content.decode()):
        found.setdefault(html.unescape(name), []).append(html.unescape(value))
    return found


def submit_intermediate_form(client, form_page, **fields):
    """Fill in the intermediate page of a form action and submit it with its hidden fields."""
    data = {**hidden_inputs(form_page), **fields}
    data.pop("csrfmiddlewaretoken", None)
    return client.post(HOSTINGS_URL, data, follow=True)


def run_confirmed_action(client, action: str, hostings, **fields):
    """An action with a confirmation page (block, unblock: the comment for the customer; purge,
    cancel purge: the reason kept in the history): the page is shown first, nothing changes until
    it is submitted with `fields`."""
    page = run_action(client, action, hostings)
    content = page.content.decode()
    assert page.status_code == 200 and ('name="comment"' in content or 'name="reason"' in content), content[:500]
    return submit_intermediate_form(client, page, **fields)
