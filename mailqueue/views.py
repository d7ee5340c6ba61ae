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
from django.utils import formats
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
from mailqueue.volume_chart import CHART_SIZES, chart_geometry


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
    hints = {}  # a refusal shared by two buttons is printed once, and both point at it
    for slug in BUTTONS_BY_STATE[State(service.state)]:
        action = CUSTOMER_ACTIONS[slug]
        refusal = transition_refusal(service=service, action=action.action, actor=actor)
        repeated = refusal is not None and str(refusal) in hints
        if refusal is not None and not repeated:
            hints[str(refusal)] = slug
        buttons.append(
            {
                "slug": slug,
                "title": action.label,
                "confirmation": action.confirmation(),
                "note": action.note,
                "confirm_label": action.confirm_label,
                "dismiss_label": action.dismiss_label,
                "enabled": refusal is None,
                "hint": None if repeated else refusal,
                "hint_id": f"hint-{hints[str(refusal)]}" if refusal is not None else "",
            }
        )
    return buttons


def _emails_page(request, hosting, *, recipient_form=None):
    """The Scripts e-mail page; `recipient_form` with errors: the recipient dialog is open on them."""
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
    chart = chart_geometry(volumes, **CHART_SIZES["wide"])
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
        "chart": chart,
        "drawings": [
            {"name": "wide", "chart": chart},
            {"name": "narrow", "chart": chart_geometry(volumes, **CHART_SIZES["narrow"])},
        ],
        "recipient_confirmation": RECIPIENT_TEXT,
        "recipient_form": recipient_form or _recipient_form(summary.service),
        "recipient_dialog_open": recipient_form is not None,
        "contact_email": hosting.customer.contact_email,
    }
    status = 200 if limit_valid and recipient_form is None else 400
    return render(request, "mailqueue/emails.html", context, status=status)


@hosting_view("GET", "HEAD")
def emails(request, hosting):
    return _emails_page(request, hosting)


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
        "note": action.note,
        "confirm_label": action.confirm_label,
        "dismiss_label": action.dismiss_label,
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


def _recipient_form(service, data=None) -> RecipientForm:
    # The field shows where the reports go now: the contact address when none was chosen.
    return RecipientForm(data, initial={"email": service.effective_report_recipient})


@hosting_view("GET", "HEAD", "POST")
def recipient(request, hosting):
    """GET: the recipient's page (without JavaScript). POST: a new recipient, or back to the default
    (the customer's contact address); a refused address shows the whole Scripts e-mail page again,
    its dialog open on the error."""
    service = mail_service_get(hosting=hosting)
    form = _recipient_form(service, request.POST if request.method == "POST" else None)
    if request.method == "POST":
        use_default = "use_default" in request.POST
        if use_default or form.is_valid():
            try:
                mail_service_recipient_change(
                    hosting=hosting,
                    actor=Actor.customer(request.user),
                    email=None if use_default else form.cleaned_data["email"],
                )
            except MailServiceError as error:
                form.add_error("email", error.message)
            else:
                messages.success(request, REQUEST_SENT)
                return redirect("mailqueue:emails", service_name=hosting.service_name)
        return _emails_page(request, hosting, recipient_form=form)
    context = {
        "hosting": hosting,
        "form": form,
        "confirmation": RECIPIENT_TEXT,
        "service": service,
        "contact_email": hosting.customer.contact_email,
    }
    return render(request, "mailqueue/recipient.html", context)


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
    """The SMTP user and server; a new password after a confirmation (a dialog, or ?rotate=1 without
    JavaScript), since every script still using the old one fails from then on."""
    new_password = None
    if request.method == "POST":
        new_password = hosting_smtp_password_rotate(hosting=hosting)
    # never_cache: the new password is shown once, in this response only, and kept by no cache.
    context = {
        "hosting": hosting,
        "new_password": new_password,
        "ingress": settings.SMTP_INGRESS_ADDR,
        "confirm_rotation": request.method != "POST" and "rotate" in request.GET,
        "rotation_warning": SMTP_ROTATION_WARNING,
    }
    return render(request, "mailqueue/smtp_credentials.html", context)


SMTP_ROTATION_WARNING = _(
    "The current password stops working at once: your scripts and applications that still use it will fail to "
    "send e-mail until you give them the new one."
)
