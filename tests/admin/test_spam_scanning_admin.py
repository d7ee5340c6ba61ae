"""Operators see whether outbound mail is scanned (SPEC §11.1), and a message's verdict."""

import pytest

from tests.admin.conftest import page_text, shown_messages
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db
OFF = (
    "L'analyse antispam sortante est désactivée : SPAMD_URL n'est pas défini, aucun e-mail n'est analysé "
    "avant la distribution."
)


def test_the_messages_list_says_scanning_is_off_without_spamd_url(operator_client, settings):
    settings.SPAMD_URL = ""
    assert OFF in shown_messages(operator_client.get("/admin/mailqueue/message/"))
    settings.SPAMD_URL = "spamd://127.0.0.1:783"
    assert shown_messages(operator_client.get("/admin/mailqueue/message/")) == []


def test_a_messages_page_shows_its_score_and_rules_to_operators(operator_client):
    message = MessageFactory(spam_score=7.5, spam_rules="MISSING_MID, HTML_IMAGE_ONLY_08")
    page = page_text(operator_client.get(f"/admin/mailqueue/message/{message.pk}/change/"))
    assert "7,5" in page or "7.5" in page
    assert "HTML_IMAGE_ONLY_08" in page
