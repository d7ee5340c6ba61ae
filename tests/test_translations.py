"""The French catalogue: complete, compiled, and actually used by the portal.

The source strings are English; French, the default language, comes from locale/fr.
"""

import gettext as gnu_gettext
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation
from django.utils.translation import gettext, ngettext

from mailqueue.actions import CUSTOMER_ACTIONS, REQUEST_SENT
from mailqueue.blocking import mail_service_block
from mailqueue.forms import RecipientForm
from mailqueue.models import BlockReason, State
from mailqueue.purge import mail_service_purge_request
from mailqueue.state import Actor
from mailqueue.views import RECIPIENT_TEXT
from tests.factories import HostingFactory, MembershipFactory

PO_FILE = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


# --- reading the .po without polib ----------------------------------------------------------------


def _unquote(line: str) -> str:
    body = line.strip()[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def po_entries() -> list[dict]:
    """Every entry of the catalogue but the header: its flags, msgid, msgid_plural, msgstr(s)."""
    entries = []
    for block in re.split(r"\n\s*\n", PO_FILE.read_text(encoding="utf-8").strip()):
        entry, field = {"flags": set(), "obsolete": False}, None
        for line in block.splitlines():
            if line.startswith("#~"):
                entry["obsolete"] = True
            elif line.startswith("#,"):
                entry["flags"].update(flag.strip() for flag in line[2:].split(","))
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                entry[field] += _unquote(line)
            else:
                field, _space, value = line.partition(" ")
                entry[field] = _unquote(value)
        if "msgid" in entry and entry["msgid"] != "":
            entries.append(entry)
    return entries


def translations_of(entry: dict) -> list[str]:
    if "msgid_plural" in entry:
        return [value for key, value in entry.items() if key.startswith("msgstr[")]
    return [entry["msgstr"]]


# --- (a) the catalogue is complete and compiled ---------------------------------------------------


def test_the_catalogue_has_entries():
    assert len(po_entries()) > 200


def test_the_compiled_catalogue_is_french_with_french_plurals():
    """A fuzzy or missing header would leave the language and the plural rule out of the .mo."""
    with MO_FILE.open("rb") as handle:
        compiled = gnu_gettext.GNUTranslations(handle)
    assert compiled.info()["language"] == "fr"
    assert [compiled.plural(n) for n in (0, 1, 2, 10)] == [0, 0, 1, 1]


def test_no_entry_is_untranslated_fuzzy_or_obsolete():
    entries = po_entries()
    untranslated = [e["msgid"] for e in entries if not all(translations_of(e))]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    obsolete = [e["msgid"] for e in entries if e["obsolete"]]
    assert untranslated == []
    assert fuzzy == []
    assert obsolete == []


def test_plural_entries_have_both_forms():
    for entry in po_entries():
        if "msgid_plural" in entry:
            assert entry.get("msgstr[0]") and entry.get("msgstr[1]"), entry["msgid"]


def test_every_translation_keeps_the_placeholders():
    for entry in po_entries():
        expected = set(PLACEHOLDER.findall(entry["msgid"] + entry.get("msgid_plural", "")))
        for value in translations_of(entry):
            assert set(PLACEHOLDER.findall(value)) == expected, entry["msgid"]


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs gettext's msgfmt")
def test_the_catalogue_compiles_cleanly(tmp_path):
    result = subprocess.run(
        ["msgfmt", "--check-format", "-o", str(tmp_path / "django.mo"), str(PO_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_compiled_catalogue_is_up_to_date():
    """The .mo says exactly what the .po says (run `manage.py compilemessages -l fr` after editing)."""
    assert MO_FILE.exists()
    with MO_FILE.open("rb") as handle:
        compiled = gnu_gettext.GNUTranslations(handle)
    for entry in po_entries():
        if "msgid_plural" in entry:
            assert compiled.ngettext(entry["msgid"], entry["msgid_plural"], 1) == entry["msgstr[0]"]
            assert compiled.ngettext(entry["msgid"], entry["msgid_plural"], 2) == entry["msgstr[1]"]
        elif "msgctxt" in entry:
            assert compiled.pgettext(entry["msgctxt"], entry["msgid"]) == entry["msgstr"], entry["msgid"]
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"], entry["msgid"]


# --- (b) key strings come out in English ----------------------------------------------------------

ENGLISH_ACTIONS = {
    "block": (
        "Block sending",
        "You are about to block the delivery of e-mails sent from your web hosting. No e-mail will be deleted: "
        "they will be held for 72 hours. During this period, you can either unblock sending or purge them.",
    ),
    "unblock": (
        "Unblock sending",
        "You are about to unblock the sending of your e-mails. Delivery will resume as soon as the next e-mail "
        "is sent. The e-mails that were blocked will be delivered again.",
    ),
    "purge": (
        "Purge e-mails",
        "You are about to delete all the held e-mails of your account. Your account will then be unblocked "
        "automatically. The operation takes between 5 and 10 minutes.",
    ),
    "cancel-purge": (
        "Cancel the purge",
        "You are about to cancel the purge. The held e-mails will be kept and sending will remain blocked.",
    ),
}


def test_state_labels_in_english():
    with translation.override("en"):
        assert [str(label) for label in State.labels] == ["Active", "Blocked", "Purging"]
        assert str(BlockReason.SPAM.label) == "abusive sending (spam)"
    with translation.override("fr"):
        assert [str(label) for label in State.labels] == ["Actif", "Inactif", "Purge"]


@pytest.mark.parametrize("slug", sorted(ENGLISH_ACTIONS))
def test_action_titles_and_confirmations_in_english(slug):
    action = CUSTOMER_ACTIONS[slug]
    with translation.override("en"):
        assert (str(action.label), action.confirmation()) == ENGLISH_ACTIONS[slug]


def test_success_message_and_recipient_text_in_english():
    with translation.override("en"):
        assert str(REQUEST_SENT) == "Your request has been sent successfully."
        assert str(RECIPIENT_TEXT).startswith("Enter the e-mail address at which you want to receive error reports.")
    with translation.override("fr"):
        for english, french in [
            ("Your request has been sent successfully.", "La requête a été envoyée avec succès."),
            ("Confirm", "Valider"),
            ("Cancel", "Annuler"),
        ]:
            assert gettext(english) == french


@pytest.mark.parametrize(
    ("email", "message"),
    [("", "You must enter an e-mail address."), ("not-an-address", "The e-mail address is not valid.")],
)
def test_recipient_errors_in_english(email, message):
    with translation.override("en"):
        form = RecipientForm({"email": email})
        assert not form.is_valid()
        assert form.errors["email"] == [message]


REFUSALS = {
    "To purge the e-mails, you must first block sending.": (
        "Pour purger les e-mails, vous devez d'abord en demander le blocage."
    ),
    "E-mail sending is already blocked.": "L'envoi des e-mails est déjà bloqué.",
    "No purge is in progress.": "Aucune purge n'est en cours.",
}


@pytest.mark.parametrize(("english", "french"), sorted(REFUSALS.items()))
def test_state_machine_refusals_in_both_languages(english, french):
    with translation.override("en"):
        assert gettext(english) == english
    with translation.override("fr"):
        assert gettext(english) == french


def test_plurals_in_both_languages():
    singular, plural = "%(counter)s e-mail in error", "%(counter)s e-mails in error"
    with translation.override("en"):
        assert [ngettext(singular, plural, n) % {"counter": n} for n in (0, 1, 3)] == [
            "0 e-mails in error",
            "1 e-mail in error",
            "3 e-mails in error",
        ]
    with translation.override("fr"):  # in French, 0 is singular
        assert [ngettext(singular, plural, n) % {"counter": n} for n in (0, 1, 3)] == [
            "0 e-mail en erreur",
            "1 e-mail en erreur",
            "3 e-mails en erreur",
        ]


# --- (c) the Scripts e-mail page in English -------------------------------------------------------


def visible_text(response) -> str:
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", content))).strip()


def french_left_on(page_text: str) -> list[str]:
    """Catalogue sentences whose French translation shows on a page that should be in English."""
    return [
        french
        for entry in po_entries()
        for french in translations_of(entry)
        if len(french) >= 15 and "%(" not in french and french != entry["msgid"] and french in page_text
    ]


def english_left_on(page_text: str) -> list[str]:
    """Catalogue sentences left in English on a page that should be in French."""
    return [
        entry["msgid"]
        for entry in po_entries()
        if len(entry["msgid"]) >= 15
        and "%(" not in entry["msgid"]
        and entry["msgid"] not in translations_of(entry)
        and entry["msgid"] in page_text
    ]


@pytest.fixture
def english_customer():
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    client = Client()
    client.force_login(membership.user)
    url = f"/hostings/{hosting.service_name}/emails/"
    response = client.post("/i18n/setlang/", {"language": "en", "next": url})
    assert response.status_code == 302
    return membership.user, hosting, client, url


@pytest.mark.django_db
def test_the_scripts_email_page_in_english(english_customer):
    _user, _hosting, client, url = english_customer

    response = client.get(url)

    assert response.status_code == 200
    page = visible_text(response)
    for english in ("Scripts e-mail", "Service status:", "Active", "Block sending", "Error report to:"):
        assert english in page
    assert "Change the recipient" in page
    for french in ("Bloquer l'envoi", "État du service", "Actif", "Valider", "Rapport d'erreurs à"):
        assert french not in page
    assert french_left_on(page) == []


@pytest.mark.django_db
def test_the_scripts_email_page_in_english_when_blocked_and_purging(english_customer):
    user, hosting, client, url = english_customer
    mail_service_block(hosting=hosting, actor=Actor.customer(user))

    blocked = visible_text(client.get(url))

    assert "Blocked" in blocked
    assert "blocked by the customer" in blocked
    assert "Unblock sending" in blocked
    assert french_left_on(blocked) == []

    mail_service_purge_request(hosting=hosting, actor=Actor.customer(user))
    purging = visible_text(client.get(url))

    assert "Purging" in purging
    assert "Cancel the purge" in purging
    assert "Deletion will start at" in purging
    assert french_left_on(purging) == []


@pytest.mark.django_db
def test_an_action_in_english_says_so_in_english(english_customer):
    _user, _hosting, client, url = english_customer

    confirm = client.get(f"{url}block/")
    assert "You are about to block the delivery" in visible_text(confirm)

    response = client.post(f"{url}block/", follow=True)
    page = visible_text(response)
    assert "Your request has been sent successfully." in page
    assert "Blocked" in page
    assert french_left_on(page) == []


# --- (d) French stays the default language; the browser's English is honoured ----------------------


@pytest.fixture
def default_language_customer():
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    client = Client()
    client.force_login(membership.user)
    return client, f"/hostings/{hosting.service_name}/emails/"


@pytest.mark.django_db
def test_the_scripts_email_page_in_french_by_default(default_language_customer):
    client, url = default_language_customer

    page = visible_text(client.get(url))

    assert "Cette page ne concerne que les e-mails envoyés depuis des scripts CGI/PERL/PHP." in page
    for french in ("État du service :", "Actif", "Bloquer l'envoi", "Rapport d'erreurs à :", "Valider"):
        assert french in page
    for english in ("Service status", "Active", "Block sending", "Error report to", "Confirm"):
        assert english not in page
    assert english_left_on(page) == []


@pytest.mark.django_db
def test_accept_language_en_serves_english(default_language_customer):
    client, url = default_language_customer

    page = visible_text(client.get(url, HTTP_ACCEPT_LANGUAGE="en"))

    assert "Block sending" in page
    assert "Bloquer l'envoi" not in page
    assert french_left_on(page) == []
