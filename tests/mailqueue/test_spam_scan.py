"""Outbound spam scanning against a real spamd (SPEC §11.1): verdicts, our threshold, no verdict, off."""

import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import pytest
from django.core.exceptions import ImproperlyConfigured

from mailqueue.spam_scan import SpamdUnavailable, SpamVerdict, spam_scan
from tests.spamd import fake_spamd

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _script_message(*, body: str = "", well_formed: bool = False) -> bytes:
    """A contact form's notification as a PHP script writes it: no Date, no Message-ID unless well formed."""
    message = EmailMessage()
    message["From"] = "Formulaire de contact <contact@boulangerie-martin.example>"
    message["To"] = "martin@boulangerie-martin.example"
    message["Subject"] = "Nouveau message depuis le site"
    if well_formed:
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain="boulangerie-martin.example")
    message.set_content(
        body
        or "Nom : Claire Dubois\nE-mail : claire.dubois@example.org\n\n"
        "Bonjour, je voudrais commander deux tartes aux pommes pour samedi midi. Merci !\n"
    )
    return message.as_bytes()


@pytest.fixture
def scanning(settings, spamd):
    settings.SPAMD_URL = spamd.url
    settings.SPAM_SCORE_THRESHOLD = 5.0
    settings.SPAMD_TIMEOUT_SECONDS = 10
    settings.SPAMD_MAX_BYTES = 500 * 1024
    return settings


def test_a_plain_script_message_is_not_spam(scanning):
    bare = spam_scan(_script_message())
    well_formed = spam_scan(_script_message(well_formed=True))
    print(f"\nwithout Date/Message-ID: {bare}\nwith them: {well_formed}")

    assert isinstance(bare, SpamVerdict) and not bare.is_spam and bare.score < 5.0
    assert {"MISSING_DATE", "MISSING_MID"} <= set(bare.rules)  # why the doors add them (SPEC §11.2)
    assert not well_formed.is_spam and well_formed.score < bare.score
    assert not {"MISSING_DATE", "MISSING_MID"} & set(well_formed.rules)


def test_gtube_is_spam_with_its_rules(scanning):
    verdict = spam_scan(_script_message(body=f"Gagnez un iPhone !\n{GTUBE}\n", well_formed=True))
    print(f"\nGTUBE: {verdict}")

    assert verdict.is_spam and verdict.score >= 1000
    assert "GTUBE" in verdict.rules
    assert verdict.threshold == 5.0 and not verdict.skipped


def test_the_threshold_is_ours_not_spamds(scanning):
    scanning.SPAM_SCORE_THRESHOLD = 2.0  # spamd's own required score stays 5.0
    verdict = spam_scan(_script_message())

    assert verdict.score < 5.0 and verdict.score >= 2.0
    assert verdict.is_spam and verdict.threshold == 2.0


def test_a_message_over_the_size_limit_is_passed_unscanned_as_spamc_does(scanning):
    spam = _script_message(body=f"{GTUBE}\n", well_formed=True)
    scanning.SPAMD_MAX_BYTES = len(spam) - 1
    skipped = spam_scan(spam)
    scanning.SPAMD_MAX_BYTES = len(spam)  # at the limit it is still scanned (spamc: larger than, not equal)
    at_limit = spam_scan(spam)

    assert skipped == SpamVerdict(score=0.0, threshold=5.0, is_spam=False, rules=[], skipped=True)
    assert at_limit.is_spam and not at_limit.skipped


def test_a_stopped_spamd_gives_no_verdict_at_once(settings, spamd_factory):
    stopped = spamd_factory()
    stopped.stop()
    settings.SPAMD_URL = stopped.url
    settings.SPAMD_TIMEOUT_SECONDS = 10
    started = time.monotonic()

    with pytest.raises(SpamdUnavailable):
        spam_scan(_script_message())
    assert time.monotonic() - started < 2  # a refused connection is not waited for


def test_a_silent_spamd_gives_no_verdict_after_the_timeout(settings):
    settings.SPAMD_TIMEOUT_SECONDS = 1
    with fake_spamd() as port:
        settings.SPAMD_URL = f"spamd://127.0.0.1:{port}"
        started = time.monotonic()
        with pytest.raises(SpamdUnavailable):
            spam_scan(_script_message())
        waited = time.monotonic() - started

    assert 0.9 <= waited < 5


@pytest.mark.parametrize(
    "answer",
    [
        b"SPAMD/1.1 75 EX_TEMPFAIL\r\n\r\n",  # spamd's own failure
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\n\r\nGTUBE",  # no Spam header: no score
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: 40\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTU",  # cut short
        b"HTTP/1.1 400 Bad Request\r\n\r\n",  # not spamd at all
        b"",  # closed without a word
    ],
)
def test_an_error_or_garbage_from_spamd_is_no_verdict(settings, answer):
    with fake_spamd(answer) as port:
        settings.SPAMD_URL = f"spamd://127.0.0.1:{port}"

        with pytest.raises(SpamdUnavailable):
            spam_scan(_script_message())


def test_without_spamd_url_nothing_is_scanned(settings):
    settings.SPAMD_URL = ""

    assert spam_scan(_script_message(body=GTUBE)) is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:783", "spamd://", "spamd://127.0.0.1:notaport", "127.0.0.1:783"])
def test_a_malformed_spamd_url_is_a_configuration_error(settings, url):
    settings.SPAMD_URL = url

    with pytest.raises(ImproperlyConfigured):
        spam_scan(_script_message())
