"""The customer's "Scripts e-mail" pages (SPEC §5). Every hosting comes from the tenancy
selector (404 for anything else); every change is a POST calling one service function."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from hosting.services import hosting_smtp_password_rotate
from hosting.views import hosting_view
from mailqueue.actions import CUSTOMER_ACTIONS, REQUEST_SENT
from mailqueue.forms import ErrorLimitForm, RecipientForm
from mailqueue.models import State
from mailqueue.purge import PURGE_DEADLINE
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.selectors import (
    daily_volumes,
    delivery_errors_recent,
    held_queue_summary,
    mail_service_get,
    mail_service_summary,
)
from mailqueue.state import Actor, MailServiceError, transition_refusal


def _purge_progress(service) -> dict | None:
    if service.state != State.PURGING or service.purge_requested_at is None:
        return None
    return {
        "due_at": service.purge_due_at,
        "started": service.purge_started_at is not None,
        "deleted": service.purge_deleted,
        "expected_end": service.purge_requested_at + PURGE_DEADLINE,
    }


# Which buttons the page shows in each state; each is enabled when the state machine allows it.
BUTTONS_BY_STATE = {
    State.ACTIVE: ["block", "purge"],
    State.BLOCKED: ["unblock", "purge"],
    State.PURGING: ["cancel-purge"],
}


def _action_buttons(service, actor) -> list[dict]:
    buttons = []
    for slug in BUTTONS_BY_STATE[State(service.state)]:
        action = CUSTOMER_ACTIONS[slug]
        refusal = transition_refusal(service=service, action=action.action, actor=actor)
        buttons.append(
            {
                "slug": slug,
                "title": action.label,
                "confirmation": action.confirmation(),
                "enabled": refusal is None,
                "hint": refusal,
            }
        )
    return buttons


@hosting_view("GET", "HEAD")
def emails(request, hosting):
    # Only a `limit` in the query is judged: other parameters (tracking, anchors) are ignored.
    if "limit" in request.GET:
        limit_form = ErrorLimitForm(request.GET)
        limit_valid = limit_form.is_valid()
    else:
        limit_form, limit_valid = ErrorLimitForm(), True
    limit = limit_form.cleaned_data["limit"] if limit_form.is_bound and limit_valid else ErrorLimitForm.DEFAULT
    summary = mail_service_summary(hosting=hosting)
    actor = Actor.customer(request.user)
    volumes = daily_volumes(hosting=hosting)
    context = {
        "hosting": hosting,
        "summary": summary,
        "held": held_queue_summary(hosting=hosting),
        "service": summary.service,
        "buttons": _action_buttons(summary.service, actor),
        "purge": _purge_progress(summary.service),
        "errors": delivery_errors_recent(hosting=hosting, limit=limit),
        "limit_form": limit_form,
        "chart": _chart(volumes),
        "recipient_confirmation": RECIPIENT_TEXT,
    }
    return render(request, "mailqueue/emails.html", context, status=200 if limit_valid else 400)


@hosting_view("GET", "HEAD", "POST")
def action(request, hosting, slug):
    if slug not in CUSTOMER_ACTIONS:
        raise Http404("Unknown action")
    action = CUSTOMER_ACTIONS[slug]
    actor = Actor.customer(request.user)
    if request.method == "POST":
        try:
            action.call(hosting=hosting, actor=actor)
        except MailServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, REQUEST_SENT)
        return redirect("mailqueue:emails", service_name=hosting.service_name)
    # The confirmation page (without JavaScript) says at once when the action is not possible now.
    refusal = transition_refusal(service=mail_service_get(hosting=hosting), action=action.action, actor=actor)
    context = {
        "hosting": hosting,
        "title": action.label,
        "confirmation": action.confirmation(),
        "slug": slug,
        "refusal": refusal,
    }
    return render(request, "mailqueue/confirm.html", context)


RECIPIENT_TEXT = _(
    "Enter the e-mail address at which you want to receive error reports. If errors occur when e-mails are sent from "
    "your web hosting, you will receive a report the next day."
)


@hosting_view("GET", "HEAD", "POST")
def recipient(request, hosting):
    service = mail_service_get(hosting=hosting)
    form = RecipientForm(
        request.POST if request.method == "POST" else None, initial={"email": service.report_recipient}
    )
    if request.method == "POST" and form.is_valid():
        try:
            mail_service_recipient_change(
                hosting=hosting, actor=Actor.customer(request.user), email=form.cleaned_data["email"]
            )
        except MailServiceError as error:
            form.add_error("email", error.message)
        else:
            messages.success(request, REQUEST_SENT)
            return redirect("mailqueue:emails", service_name=hosting.service_name)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "mailqueue/recipient.html",
        {"hosting": hosting, "form": form, "confirmation": RECIPIENT_TEXT},
        status=status,
    )


@never_cache
@hosting_view("GET", "HEAD")
def status(request, hosting):
    """The service's state as JSON, polled by the page while a purge runs (never cached)."""
    service = mail_service_get(hosting=hosting)
    purge = _purge_progress(service)
    return JsonResponse(
        {
            "state": service.state,
            "label": str(service.state_label),
            "purge_started": bool(purge and purge["started"]),
            "purge_deleted": purge["deleted"] if purge else 0,
        }
    )


@never_cache
@hosting_view("GET", "HEAD", "POST")
def smtp_credentials(request, hosting):
    new_password = None
    if request.method == "POST":
        new_password = hosting_smtp_password_rotate(hosting=hosting)
    # never_cache: the new password is shown once, in this response only, and kept by no cache.
    return render(
        request,
        "mailqueue/smtp_credentials.html",
        {"hosting": hosting, "new_password": new_password, "ingress": settings.SMTP_INGRESS_ADDR},
    )


def _chart(volumes: list[dict]) -> dict:
    """Geometry of the 30-day bar chart, drawn as server-side SVG (no script, no CDN)."""
    width, height, left, right, bottom, top = 720, 220, 40, 24, 30, 10
    peak = max([1, *(max(v["sent"], v["errors"]) for v in volumes)])
    slot = (width - left - right) / len(volumes)  # the right margin keeps the last date readable
    bar = max(2.0, slot / 2 - 2)
    scale = (height - bottom - top) / peak
    bars = []
    for index, volume in enumerate(volumes):
        x = left + index * slot + 1
        sent_h = volume["sent"] * scale
        error_h = volume["errors"] * scale
        bars.append(
            {
                "day": volume["day"],
                "sent": volume["sent"],
                "errors": volume["errors"],
                "sent_x": round(x, 1),
                "sent_y": round(height - bottom - sent_h, 1),
                "sent_h": round(sent_h, 1),
                "error_x": round(x + bar + 1, 1),
                "error_y": round(height - bottom - error_h, 1),
                "error_h": round(error_h, 1),
                "label": index % 5 == 0 or index == len(volumes) - 1,
                "label_x": round(x + bar, 1),
            }
        )
    tick_values = sorted({0, round(peak / 2), peak})  # a peak of 1 gives 0 and 1, not 0, 0, 1
    ticks = [{"value": value, "y": round(height - bottom - value * scale, 1)} for value in tick_values]
    return {
        "width": width,
        "height": height,
        "bar": round(bar, 1),
        "bars": bars,
        "ticks": ticks,
        "axis_y": height - bottom,
        "left": left,
        "today": timezone.localdate(),
    }
