"""Notices to the report recipient about what the customer did not do themselves (SPEC §10.3):
a block or unblock by an operator (with the operator's comment), the end of a purge with the
number of e-mails deleted, and a webhook endpoint disabled after a day of failures. Each is sent
once (the key names its Event or endpoint), in the customer's language, as text and HTML; a
failed send is not remembered, so the task's retry tries again."""

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation

from mailqueue.models import Action, ActorKind, BlockReason, Event, MailService, WebhookEndpoint

NOTICE_KEY_TIMEOUT = 30 * 24 * 3600
# Which events a notice follows, and its template (mailqueue/email/<name>.txt, .html, _subject.txt).
_TEMPLATES = {
    (Action.BLOCK, ActorKind.OPERATOR): "operator_block",
    (Action.UNBLOCK, ActorKind.OPERATOR): "operator_unblock",
    (Action.COMPLETE_PURGE, ActorKind.SYSTEM): "purge_done",
}


def notice_wanted(*, action: str, actor_kind: str, reason: str = "") -> bool:
    """Whether an Event of `action` by `actor_kind` gets a notice (a spam block gets the abuse
    notice of SPEC §9.1 instead)."""
    if action == Action.BLOCK and reason == BlockReason.SPAM:
        return False
    return (action, actor_kind) in _TEMPLATES


def _send_once(*, key: str, template: str, language: str, to: list[str], context: dict) -> bool:
    if not cache.add(key, True, timeout=NOTICE_KEY_TIMEOUT):
        return False
    try:
        with translation.override(language):
            subject = " ".join(render_to_string(f"mailqueue/email/{template}_subject.txt", context).split())
            message = EmailMultiAlternatives(
                subject,
                render_to_string(f"mailqueue/email/{template}.txt", context),
                settings.DEFAULT_FROM_EMAIL,
                to,
                headers={"Auto-Submitted": "auto-generated"},
            )
            message.attach_alternative(render_to_string(f"mailqueue/email/{template}.html", context), "text/html")
        message.send()
    except Exception:
        cache.delete(key)
        raise
    return True


def service_notice(*, event_id: int) -> bool:
    """The notice of Event `event_id`, when it is one that has a notice; returns whether it sent."""
    event = Event.objects.select_related("hosting__customer").filter(pk=event_id).first()
    if event is None or not notice_wanted(action=event.action, actor_kind=event.actor_kind, reason=event.reason):
        return False
    hosting = event.hosting
    service = MailService.objects.get(hosting=hosting)
    context = {
        "hosting": hosting,
        "customer": hosting.customer,
        "event": event,
        "reason": BlockReason(event.reason).label if event.reason else "",
        "comment": event.detail,
        "hold_hours": settings.HOLD_HOURS,
        "deleted": event.message_count or 0,
    }
    return _send_once(
        key=f"mailqueue:service-notice:{event.pk}:{event.created_at.timestamp()}",
        template=_TEMPLATES[(event.action, event.actor_kind)],
        language=hosting.customer.language,
        to=[service.effective_report_recipient],
        context=context,
    )


def webhook_disabled_notify(*, endpoint_id: int) -> bool:
    """Tell the customer's contact that the endpoint was disabled (once per disabling)."""
    endpoint = WebhookEndpoint.objects.select_related("customer").filter(pk=endpoint_id, active=False).first()
    if endpoint is None or endpoint.disabled_at is None:
        return False
    customer = endpoint.customer
    return _send_once(
        key=f"mailqueue:webhook-disabled:{endpoint.pk}:{endpoint.disabled_at.timestamp()}",
        template="webhook_disabled",
        language=customer.language,
        to=[customer.contact_email],
        context={"customer": customer, "endpoint": endpoint, "hours": settings.WEBHOOK_RETRY_HOURS},
    )
