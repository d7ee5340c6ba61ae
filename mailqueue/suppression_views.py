"""The customer's « Adresses supprimées » page (SPEC §10.2): the hosting's suppressed addresses,
searched, paged by key (a hosting may list 100,000 of them: never counted, never OFFSET), and
removed through `suppressions_remove`, the one writer."""

import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from hosting.views import hosting_view
from mailqueue.selectors import suppressions_list
from mailqueue.state import Actor, MailServiceError
from mailqueue.suppression import suppressions_remove

PAGE_SIZE = 50
ADDRESS_MAX_LENGTH = 320  # as Suppression.address: anything longer is listed nowhere
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _cursor_of(suppression) -> str:
    """Where the page after this row starts, in the list's order (newest first): its date in
    microseconds since the epoch (exact, unlike a float) and its id."""
    delta = suppression.created_at - _EPOCH
    return f"{(delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds}.{suppression.pk}"


def _after(cursor: str) -> Q | None:
    """The rows after `cursor`, or None for a cursor that names no position (the first page)."""
    try:
        microseconds, pk = (int(part) for part in cursor.split("."))
        created_at = _EPOCH + datetime.timedelta(microseconds=microseconds)
    except (ValueError, OverflowError):
        return None
    # The bare `created_at <=` bounds the index scan; an OR alone is a filter read from the newest row.
    return Q(created_at__lte=created_at) & (Q(created_at__lt=created_at) | Q(pk__lt=pk))


def _clean(value: str) -> str:
    # PostgreSQL refuses NUL in a query parameter; nothing longer than an address can match.
    return value.replace("\x00", "").strip()[:ADDRESS_MAX_LENGTH]


def _page_url(hosting, *, search: str = "", after: str = "") -> str:
    query = {name: value for name, value in (("q", search), ("after", after)) if value}
    url = reverse("mailqueue:suppressions", args=[hosting.service_name])
    return f"{url}?{urlencode(query)}" if query else url


@hosting_view("GET", "HEAD", "POST")
def suppressions(request, hosting):
    if request.method == "POST":
        return _remove(request, hosting)
    search = _clean(request.GET.get("q", ""))
    cursor = request.GET.get("after", "")
    rows = suppressions_list(hosting=hosting, search=search)
    after = _after(cursor) if cursor else None
    if after is not None:
        rows = rows.filter(after)
    page = list(rows[: PAGE_SIZE + 1])  # one more than shown: is there a next page?
    shown = page[:PAGE_SIZE]
    context = {
        "hosting": hosting,
        "suppressions": shown,
        "search": search,
        "cursor": cursor if after is not None else "",
        "next_url": _page_url(hosting, search=search, after=_cursor_of(shown[-1])) if len(page) > PAGE_SIZE else "",
        "first_url": _page_url(hosting, search=search) if after is not None else "",
        "suppression_days": settings.SUPPRESSION_DAYS,
    }
    return render(request, "mailqueue/suppressions.html", context)


def _remove(request, hosting):
    """Remove the address of the row's button, or else the ticked ones; back to the same page."""
    addresses = [request.POST["remove"]] if request.POST.get("remove") else request.POST.getlist("address")
    addresses = [address for address in map(_clean, addresses) if address]
    if not addresses:
        messages.error(request, _("Select at least one address to remove."))
    else:
        try:
            removed = suppressions_remove(hosting=hosting, addresses=addresses, actor=Actor.customer(request.user))
        except MailServiceError as error:
            messages.error(request, error.message)
        else:
            if removed:
                text = ngettext(
                    "%(count)d address removed from the suppression list.",
                    "%(count)d addresses removed from the suppression list.",
                    removed,
                )
                messages.success(request, text % {"count": removed})
            else:
                messages.info(request, _("These addresses were no longer on the list."))
    cursor = request.POST.get("after", "")
    after = cursor if cursor and _after(cursor) is not None else ""
    return redirect(_page_url(hosting, search=_clean(request.POST.get("q", "")), after=after))
