"""The customer's « Suivi des envois » (SPEC §10.3): the hosting's delivery log (filters, keyset
pages, actions on a selection or on a row), one message's page (never its content), and the
streamed CSV of the log and of the error list.

Every row comes from the hosting the tenancy door gave; every change is a POST through
`message_actions`, which leaves any message that is not the hosting's, or not in a status the
action allows, as it was."""

import dataclasses
import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache

from hosting.views import hosting_view
from mailqueue.forms import ErrorsExportForm
from mailqueue.message_actions import DELETABLE, messages_delete, messages_retry
from mailqueue.message_log import (
    MessageLogFilter,
    csv_filename,
    cursor_decode,
    errors_csv,
    messages_csv,
    messages_log,
    messages_page,
)
from mailqueue.models import Message, MessageStatus, RecipientStatus
from mailqueue.state import Actor, MailServiceError

# The query parameters of the log: its filters and the page's cursor; nothing else is kept.
QUERY_KEYS = (*MessageLogFilter.base_filters, "after")
SELECTION_MAX = 500  # ids read from one POST (a page shows 50)
RECIPIENTS_SHOWN = 3  # per row of the log; the message's page lists them all
_PK_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class MessageView:
    """A message as the log and its page show it, with what the customer may do with it."""

    message: Message
    recipients: list[dict]
    more_recipients: int  # not in `recipients` (the log shows the first few)
    can_delete: bool
    can_retry: bool
    due_label: str  # "next attempt", "expires", "as soon as the hourly limit allows", or empty
    due_at: datetime.datetime | None


def _recipient(entry: dict) -> dict:
    status = entry.get("status", "")
    shown = {
        "address": entry.get("address", ""),
        "status": status,
        "status_label": str(RecipientStatus(status).label) if status in RecipientStatus.values else status,
        "reply": " ".join(str(part) for part in (entry.get("code"), entry.get("reply")) if part),
    }
    for note in ("bounce", "delayed"):  # what a delivery report said later (mailqueue.bounces)
        if isinstance(entry.get(note), dict):
            shown[note] = {**entry[note], "at": parse_datetime(entry[note].get("at") or "")}
    return shown


def message_view(message: Message, *, now: datetime.datetime, recipients: int | None = None) -> MessageView:
    """`recipients`: how many of them to prepare (all by default)."""
    status = message.status
    if status == MessageStatus.HELD:
        due_label, due_at = _("expires"), message.held_until
    elif status in (MessageStatus.QUEUED, MessageStatus.DEFERRED) and message.next_attempt_at:
        due_label, due_at = _("next attempt"), message.next_attempt_at
        if status == MessageStatus.QUEUED and due_at <= now:
            due_label, due_at = _("as soon as the hourly limit allows"), None
    else:
        due_label, due_at = "", None
    entries = (message.recipients or [])[:recipients]
    return MessageView(
        message=message,
        recipients=[_recipient(entry) for entry in entries],
        more_recipients=len(message.recipients or []) - len(entries),
        can_delete=status in DELETABLE,
        can_retry=status == MessageStatus.DEFERRED,
        due_label=due_label,
        due_at=due_at,
    )


def _query(params, **changes) -> str:
    """The log's query string from `params` (its filters and cursor only), with `changes`
    (a value of None removes the parameter)."""
    kept = {key: [value for value in params.getlist(key) if value] for key in QUERY_KEYS}
    for key, value in changes.items():
        kept[key] = [] if value is None else [value]
    return urlencode({key: values for key, values in kept.items() if values}, doseq=True)


def _log_url(hosting, query: str = "") -> str:
    url = reverse("mailqueue:messages", args=[hosting.service_name])
    return f"{url}?{query}" if query else url


def _log_page(request, hosting, log, *, status: int = 200):
    valid = log.is_valid() if log.is_bound else True
    cursor = request.GET.get("after", "")
    rows, next_cursor = messages_page(queryset=log.qs, cursor=cursor or None) if valid else ([], None)
    now = timezone.now()
    on_a_later_page = bool(cursor) and cursor_decode(cursor) is not None
    filters = _query(request.GET, after=None)
    export_url = reverse("mailqueue:messages-export", args=[hosting.service_name])
    views = [message_view(message, now=now, recipients=RECIPIENTS_SHOWN) for message in rows]
    context = {
        "hosting": hosting,
        "form": log.form,
        "rows": views,
        "can_delete_any": any(view.can_delete for view in views),
        "can_retry_any": any(view.can_retry for view in views),
        "query": _query(request.GET),
        "next_url": _log_url(hosting, _query(request.GET, after=next_cursor)) if next_cursor else "",
        "first_url": _log_url(hosting, filters) if on_a_later_page else "",
        "export_url": f"{export_url}?{filters}" if filters else export_url,
        "filtered": bool(filters),
        "retention_days": settings.RETENTION_DAYS,
    }
    return render(request, "mailqueue/messages.html", context, status=status if valid else 400)


@hosting_view("GET", "HEAD", "POST")
def message_list(request, hosting):
    if request.method == "POST":
        _act_on_selection(request, hosting)
        return redirect(_log_url(hosting, _query(request.GET)))  # the same filters and page
    return _log_page(request, hosting, messages_log(hosting=hosting, data=request.GET))


def _message_ids(values) -> list[int]:
    ids = []
    for value in values[:SELECTION_MAX]:
        try:
            pk = int(value)
        except (TypeError, ValueError):
            continue
        if 0 < pk <= _PK_MAX:
            ids.append(pk)
    return ids


def _act_on_selection(request, hosting) -> None:
    """A row's button acts on its message only; the buttons under the table on the ticked ones."""
    if request.POST.get("delete"):
        action, ids = "delete", [request.POST["delete"]]
    elif request.POST.get("retry"):
        action, ids = "retry", [request.POST["retry"]]
    else:
        action, ids = request.POST.get("action", ""), request.POST.getlist("message")
    ids = _message_ids(ids)
    if action not in ACTIONS:
        messages.error(request, _("Choose an action."))
    elif not ids:
        messages.error(request, _("Select at least one e-mail."))
    else:
        _act(request, hosting, action, ids)


def _deleted(request, done: int, left: int) -> None:
    if done:
        text = ngettext("%(count)d e-mail deleted.", "%(count)d e-mails deleted.", done)
        messages.success(request, text % {"count": done})
    if left:
        text = ngettext(
            "%(count)d e-mail was left as it was: only held or queued e-mails can be deleted.",
            "%(count)d e-mails were left as they were: only held or queued e-mails can be deleted.",
            left,
        )
        (messages.info if done else messages.error)(request, text % {"count": left})


def _retried(request, done: int, left: int) -> None:
    if done:
        text = ngettext(
            "%(count)d e-mail put back in delivery now.", "%(count)d e-mails put back in delivery now.", done
        )
        messages.success(request, text % {"count": done})
    if left:
        text = ngettext(
            "%(count)d e-mail was left as it was: only deferred e-mails can be retried.",
            "%(count)d e-mails were left as they were: only deferred e-mails can be retried.",
            left,
        )
        (messages.info if done else messages.error)(request, text % {"count": left})


ACTIONS = {"delete": (messages_delete, _deleted), "retry": (messages_retry, _retried)}


def _act(request, hosting, action: str, ids: list[int]) -> int:
    """Run the action on `ids` as the customer and say what happened; returns how many changed."""
    service, tell = ACTIONS[action]
    try:
        done = service(hosting=hosting, message_ids=ids, actor=Actor.customer(request.user))
    except MailServiceError as error:
        messages.error(request, error.message)
        return 0
    tell(request, done, len(set(ids)) - done)
    return done


@hosting_view("GET", "HEAD", "POST")
def message_detail(request, hosting, pk):
    message = get_object_or_404(Message.objects.filter(hosting=hosting).defer("raw"), pk=pk)
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            messages.error(request, _("Choose an action."))
        elif _act(request, hosting, action, [message.pk]) and action == "delete":
            return redirect(_log_url(hosting))  # the message is gone
        return redirect("mailqueue:message", service_name=hosting.service_name, pk=message.pk)
    view = message_view(message, now=timezone.now())
    context = {
        "hosting": hosting,
        "view": view,
        "message": message,
        "gives_up_at": (
            message.created_at + datetime.timedelta(seconds=settings.RETRY_MAX_AGE_SECONDS)
            if message.status == MessageStatus.DEFERRED
            else None
        ),
        "log_url": _log_url(hosting),
    }
    return render(request, "mailqueue/message.html", context)


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


@never_cache
@hosting_view("GET", "HEAD")
def messages_export(request, hosting):
    """The log with the page's filters as CSV, streamed; without a start date, from the start of
    the retention period. Filters that are not valid lead back to the log, which says why."""
    data = request.GET.copy()
    if not data.get("since"):
        data["since"] = (timezone.localdate() - datetime.timedelta(days=settings.RETENTION_DAYS)).isoformat()
    log = messages_log(hosting=hosting, data=data)
    if not log.is_valid():
        return redirect(_log_url(hosting, _query(request.GET, after=None)))
    return _csv_response(messages_csv(log.qs), csv_filename(hosting, "messages"))


@never_cache
@hosting_view("GET", "HEAD")
def errors_export(request, hosting):
    """The error list of [since, until] as CSV, streamed; by default the retention period."""
    form = ErrorsExportForm(request.GET)
    if not form.is_valid():
        messages.error(request, _("Enter valid dates (from, to) for the export of the e-mails in error."))
        return redirect(reverse("mailqueue:emails", args=[hosting.service_name]) + "#errors")
    since, until = form.period()
    return _csv_response(errors_csv(hosting=hosting, since=since, until=until), csv_filename(hosting, "errors"))
