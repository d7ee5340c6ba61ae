"""Notices to the customer about their mail service: the platform's automatic block (SPEC §3)
and the abuse notice of a spam block (SPEC §9.1)."""

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, send_mail
from django.template.loader import render_to_string
from django.utils import translation

from mailqueue.models import Action, BlockReason, Event

# The notice of one automatic block is sent once: the key names that block's Event.
AUTO_BLOCK_NOTICE_KEY_TIMEOUT = 30 * 24 * 3600


def auto_block_notify(*, event_id: int) -> bool:
    """Tell the customer's contact, in their language, that the platform blocked sending
    (the automatic block recorded by Event `event_id`).

    Sends at most one notice per automatic block, even if called twice; a failed send is not
    remembered, so the task's retry tries again. Returns whether it sent.
    """
    event = Event.objects.select_related("hosting__customer").filter(pk=event_id, action=Action.AUTO_BLOCK).first()
    if event is None:
        return False
    hosting, reason = event.hosting, event.reason
    key = f"mailqueue:auto-block-notice:{hosting.pk}:{event.pk}:{event.created_at.timestamp()}"
    if not cache.add(key, True, timeout=AUTO_BLOCK_NOTICE_KEY_TIMEOUT):
        return False
    customer = hosting.customer
    try:
        with translation.override(customer.language):
            context = {
                "hosting": hosting,
                "customer": customer,
                "reason": BlockReason(reason).label,
                "reason_code": reason,
                "hold_hours": settings.HOLD_HOURS,
            }
            subject = " ".join(render_to_string("mailqueue/email/auto_block_subject.txt", context).split())
            body = render_to_string("mailqueue/email/auto_block.txt", context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [customer.contact_email])
    except Exception:
        cache.delete(key)
        raise
    return True


def abuse_notify(*, event_id: int) -> bool:
    """Send « Abus avec votre hébergement {service} » (text and HTML, the customer's language)
    to the customer's contact for the spam block recorded by Event `event_id`: what happened, the
    three usual causes and what to do. At most once per block; a failed send is retried."""
    event = Event.objects.select_related("hosting__customer").filter(pk=event_id).first()
    if event is None or event.reason != BlockReason.SPAM:
        return False
    key = f"mailqueue:abuse-notice:{event.pk}:{event.created_at.timestamp()}"
    if not cache.add(key, True, timeout=AUTO_BLOCK_NOTICE_KEY_TIMEOUT):
        return False
    hosting = event.hosting
    try:
        with translation.override(hosting.customer.language):
            context = {
                "hosting": hosting,
                "customer": hosting.customer,
                "by_platform": event.action == Action.AUTO_BLOCK,
                "hold_hours": settings.HOLD_HOURS,
                "spam_repeat_days": settings.SPAM_REPEAT_DAYS,
            }
            subject = " ".join(render_to_string("mailqueue/email/abuse_subject.txt", context).split())
            message = EmailMultiAlternatives(
                subject,
                render_to_string("mailqueue/email/abuse.txt", context),
                settings.DEFAULT_FROM_EMAIL,
                [hosting.customer.contact_email],
            )
            message.attach_alternative(render_to_string("mailqueue/email/abuse.html", context), "text/html")
        message.send()
    except Exception:
        cache.delete(key)
        raise
    return True
