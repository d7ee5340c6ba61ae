"""The customer's "Scripts e-mail" pages (SPEC §5). Every hosting comes from the tenancy
selector (404 for anything else); every change is a POST calling one service function."""

import dataclasses
import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache

from hosting.services import hosting_smtp_password_rotate
from hosting.views import hosting_view
from mailqueue.actions import CUSTOMER_ACTIONS, REQUEST_SENT
from mailqueue.blocking import FORCED
from mailqueue.forms import ErrorLimitForm, ErrorsExportForm, RecipientForm
from mailqueue.message_log import cursor_decode
from mailqueue.models import Action, ActorKind, BlockReason, State
from mailqueue.purge import PURGE_DEADLINE
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.selectors import (
    HELD_COUNT_CAP,
    daily_volumes,
    delivery_errors_recent,
    events_page,
    events_recent,
    held_queue_summary,
    mail_service_get,
    mail_service_summary,
    pending_summary,
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
    pending = pending_summary(hosting=hosting)
    context = {
        "hosting": hosting,
        "summary": summary,
        "held": held_queue_summary(hosting=hosting),
        "pending": pending,
        # A count at the cap is shown "10 000+": there are more, not counted.
        "queued_capped": pending.capped and pending.queued >= HELD_COUNT_CAP,
        "deferred_capped": pending.capped and pending.deferred >= HELD_COUNT_CAP,
        "events": event_rows(events_recent(hosting=hosting)),
        "errors_export": ErrorsExportForm.with_retention_period(),
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


@dataclasses.dataclass(frozen=True)
class EventRow:
    """One line of the service's history as the customer reads it."""

    at: datetime.datetime
    who: str
    what: str
    change: str  # "Active → Blocked (blocked by the customer)", or empty
    count: str  # "12 e-mails deleted", or empty
    detail: str


# How each action's message count reads; any other action says "n e-mails".
_COUNT_TEXTS = {
    Action.BLOCK: lambda n: ngettext("%(count)s e-mail held", "%(count)s e-mails held", n),
    Action.AUTO_BLOCK: lambda n: ngettext("%(count)s e-mail held", "%(count)s e-mails held", n),
    Action.UNBLOCK: lambda n: ngettext(
        "%(count)s e-mail put back in delivery", "%(count)s e-mails put back in delivery", n
    ),
    Action.COMPLETE_PURGE: lambda n: ngettext("%(count)s e-mail deleted", "%(count)s e-mails deleted", n),
    Action.DELETE_MESSAGES: lambda n: ngettext("%(count)s e-mail deleted", "%(count)s e-mails deleted", n),
    Action.EXPIRE: lambda n: ngettext("%(count)s held e-mail expired", "%(count)s held e-mails expired", n),
    Action.RETRY_MESSAGES: lambda n: ngettext("%(count)s e-mail retried", "%(count)s e-mails retried", n),
    Action.UNSUPPRESS: lambda n: ngettext("%(count)s address removed", "%(count)s addresses removed", n),
}
# Details that are lists of ids or fixed English notes: the count says it for the customer.
_DETAIL_HIDDEN = {Action.EXPIRE, Action.DELETE_MESSAGES, Action.RETRY_MESSAGES}


def _label(choices, value: str) -> str:
    return str(choices(value).label) if value in choices.values else value


def event_rows(events) -> list[EventRow]:
    rows = []
    for event in events:
        who = _label(ActorKind, event.actor_kind)
        if event.actor_label and event.actor_label != event.actor_kind:
            who = f"{who} ({event.actor_label})"
        change = ""
        if event.from_state and event.to_state and event.from_state != event.to_state:
            change = f"{_label(State, event.from_state)} → {_label(State, event.to_state)}"
            if event.to_state == State.BLOCKED and event.reason:
                change = f"{change} ({_label(BlockReason, event.reason)})"
        count = ""
        if event.message_count is not None:
            text = _COUNT_TEXTS.get(event.action, lambda n: ngettext("%(count)s e-mail", "%(count)s e-mails", n))
            count = text(event.message_count) % {"count": formats.localize(event.message_count)}
        detail = "" if event.action in _DETAIL_HIDDEN else event.detail
        if event.action == Action.UNBLOCK and detail == FORCED:
            detail = str(_("error tolerance doubled"))
        what = _label(Action, event.action)
        rows.append(EventRow(event.created_at, who, what[:1].upper() + what[1:], change, count, detail))
    return rows


def _history_url(hosting, after: str = "") -> str:
    url = reverse("mailqueue:history", args=[hosting.service_name])
    return f"{url}?{urlencode({'after': after})}" if after else url


@hosting_view("GET", "HEAD")
def history(request, hosting):
    """Every Event of the service, newest first, a page at a time by key (no OFFSET, no COUNT)."""
    cursor = request.GET.get("after", "")
    events, next_cursor = events_page(hosting=hosting, cursor=cursor or None)
    context = {
        "hosting": hosting,
        "events": event_rows(events),
        "next_url": _history_url(hosting, next_cursor) if next_cursor else "",
        "first_url": _history_url(hosting) if cursor and cursor_decode(cursor) is not None else "",
    }
    return render(request, "mailqueue/history.html", context)


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
