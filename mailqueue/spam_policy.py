"""Outbound spam scanning at delivery (SPEC §11.1): when SPAMD_URL is set, every message is
scanned, as it will leave, before the relay sees it. At or above SPAM_SCORE_THRESHOLD it is kept
from the relay and failed « considéré comme spam (score …) » (its rules kept on the message, for
operators); spamd down or too slow defers it (retried, never sent unscanned, never lost).
SPAM_BLOCK_COUNT such messages within an hour block the hosting for `spam` (`abuse`)."""

import logging

from django.utils import translation
from django.utils.translation import gettext as _

from mailqueue.models import Message
from mailqueue.spam_scan import SpamdUnavailable, spam_scan

logger = logging.getLogger("mailqueue.delivery")
SPAM_CODE = 550
UNAVAILABLE = (451, "4.7.0 spam scanner unavailable: the message will be tried again")


def outbound_scan(message: Message, raw: bytes, recipients: list[str], *, language: str):
    """None when `message` may go to the relay (scanned clean, or scanning off); otherwise the
    results of its `recipients`: a permanent refusal for spam, a temporary one without a verdict.
    The verdict is written on `message` (in memory; the caller saves it)."""
    try:
        verdict = spam_scan(raw)
    except SpamdUnavailable as error:
        logger.warning("message %s deferred: %s", message.pk, error, extra={"message_pk": message.pk})
        return dict.fromkeys(recipients, UNAVAILABLE)
    if verdict is None or verdict.skipped:
        return None
    message.spam_score = verdict.score
    message.spam_rules = ", ".join(verdict.rules)[:500]
    if not verdict.is_spam:
        return None
    logger.warning(
        "message %s of hosting %s kept from the relay: spam score %s",
        message.pk,
        message.hosting_id,
        verdict.score,
        extra={"hosting_id": message.hosting_id, "message_pk": message.pk},
    )
    with translation.override(language):
        reply = _("5.7.1 considered as spam (score %(score)s)") % {"score": f"{verdict.score:.1f}"}
    return dict.fromkeys(recipients, (SPAM_CODE, reply))
