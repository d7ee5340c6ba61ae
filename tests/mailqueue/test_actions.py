"""The one table of the customer's four actions: texts built from the settings, one table for
the portal, the admin and the API."""

import pytest
from django.utils import translation

from mailqueue.actions import CUSTOMER_ACTIONS, CUSTOMER_ACTIONS_BY_API_NAME
from mailqueue.admin import HostingAdmin
from mailqueue.models import Action


def test_durations_in_the_texts_come_from_the_settings(settings):
    settings.HOLD_HOURS = 48
    settings.PURGE_GRACE_SECONDS = 120
    with translation.override("fr"):
        assert "mis en attente pendant 48H." in CUSTOMER_ACTIONS["block"].confirmation()
        assert "L’opération prend entre 2 et 10 minutes." in CUSTOMER_ACTIONS["purge"].confirmation()
        assert CUSTOMER_ACTIONS["block"].outcome() == "Envoi bloqué : les e-mails sont mis en attente pendant 48 h."
    with translation.override("en"):
        assert "they will be held for 48 hours." in CUSTOMER_ACTIONS["block"].confirmation()
        assert CUSTOMER_ACTIONS["block"].outcome() == "Sending blocked: messages are held for 48 h."
        assert "within 10 minutes" in CUSTOMER_ACTIONS["purge"].outcome()


def test_a_grace_of_seconds_is_promised_in_whole_minutes_never_less(settings):
    settings.PURGE_GRACE_SECONDS = 61
    with translation.override("fr"):
        assert "entre 2 et 10 minutes" in CUSTOMER_ACTIONS["purge"].confirmation()


def test_the_table_covers_ovhs_action_enum_once_each():
    assert sorted(CUSTOMER_ACTIONS_BY_API_NAME) == ["BLOCK", "CANCEL_PURGE", "PURGE", "UNBLOCK"]
    assert {action.action for action in CUSTOMER_ACTIONS.values()} == {
        Action.BLOCK,
        Action.UNBLOCK,
        Action.PURGE,
        Action.CANCEL_PURGE,
    }


@pytest.mark.parametrize(
    ("method", "slug"),
    [("block", "block"), ("unblock", "unblock"), ("purge", "purge"), ("cancel_purge", "cancel-purge")],
)
def test_the_admin_actions_are_labelled_from_the_table(method, slug):
    assert getattr(HostingAdmin, method).short_description == CUSTOMER_ACTIONS[slug].label
