"""The delivery log (SPEC §10.3): a hosting's messages of the retention period, filtered
(django-filter), newest first, keyset-paged so that page 1 and page 1,000 cost the same at
millions of rows; and the streamed CSV of the log and of the error list (flat memory).

One filter and one page reader for the portal's « Suivi des envois » and the API."""

import base64
import binascii
import csv
import datetime

import django_filters
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue.models import DeliveryError, Message, MessageStatus

PAGE_SIZE = 50
CSV_CHUNK = 2000
# Days a filter accepts: their local midnights (and the next day's) are datetimes the database can hold.
DAY_VALIDATORS = [MinValueValidator(datetime.date(1900, 1, 1)), MaxValueValidator(datetime.date(9998, 12, 31))]


class MessageLogFilter(django_filters.FilterSet):
    """status (several), recipient, sender, subject (parts of them), received from / to (days)."""

    status = django_filters.MultipleChoiceFilter(
        label=_("Status"), choices=MessageStatus.choices, widget=forms.CheckboxSelectMultiple
    )
    recipient = django_filters.CharFilter(label=_("Recipient"), method="_recipient", max_length=320)
    sender = django_filters.CharFilter(label=_("Sender"), field_name="sender", lookup_expr="icontains", max_length=320)
    subject = django_filters.CharFilter(
        label=_("Subject"), field_name="subject", lookup_expr="icontains", max_length=255
    )
    since = django_filters.DateFilter(
        label=_("From"), method="_since", widget=forms.DateInput(attrs={"type": "date"}), validators=DAY_VALIDATORS
    )
    until = django_filters.DateFilter(
        label=_("To"), method="_until", widget=forms.DateInput(attrs={"type": "date"}), validators=DAY_VALIDATORS
    )

    class Meta:
        model = Message
        fields = ["status", "recipient", "sender", "subject", "since", "until"]

    def _recipient(self, queryset, name, value):
        # Recipients are a JSON list: searched as text, which both databases do the same way.
        return queryset.annotate(recipients_text=Cast("recipients", TextField())).filter(
            recipients_text__icontains=value.strip()
        )

    def _since(self, queryset, name, value: datetime.date):
        return queryset.filter(created_at__gte=_local_midnight(value))

    def _until(self, queryset, name, value: datetime.date):
        return queryset.filter(created_at__lt=_local_midnight(value + datetime.timedelta(days=1)))


def _local_midnight(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def cursor_encode(message: Message) -> str:
    """The opaque position after `message` in the log's order (newest first)."""
    return base64.urlsafe_b64encode(f"{message.created_at.isoformat()}|{message.pk}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime.datetime, int] | None:
    """(created_at, id) of a cursor; None when it is not one (the first page is shown)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = text.rsplit("|", 1)
        created_at = parse_datetime(stamp)
        if created_at is None or timezone.is_naive(created_at):
            return None
        created_at.astimezone(datetime.UTC)  # a forged year 1 or 9999 would overflow in the database
        return created_at, int(pk)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


def messages_log(*, hosting: Hosting, data=None):
    """The bound filter over the hosting's messages (`data`: the query parameters)."""
    return MessageLogFilter(data or None, queryset=Message.objects.filter(hosting=hosting))


def messages_page(*, queryset, cursor: str | None = None, size: int = PAGE_SIZE) -> tuple[list[Message], str | None]:
    """One page of `queryset` after `cursor`, newest first, without the content; and the cursor
    of the next page (None on the last). A WHERE (created_at, id) < cursor on the
    (hosting, created_at, id) index: the same cost on every page, no OFFSET, no COUNT."""
    rows = queryset.defer("raw").order_by("-created_at", "-id")
    position = cursor_decode(cursor) if cursor else None
    if position is not None:
        created_at, pk = position
        # The bare `created_at <=` bounds the index scan; an OR alone is a filter read from the newest row.
        rows = rows.filter(Q(created_at__lte=created_at), Q(created_at__lt=created_at) | Q(id__lt=pk))
    page = list(rows[: size + 1])
    more = len(page) > size
    page = page[:size]
    return page, (cursor_encode(page[-1]) if more and page else None)


def messages_page_before(*, queryset, cursor: str, size: int = PAGE_SIZE) -> tuple[list[Message], str | None]:
    """The page just before `cursor` (the newer messages), newest first; and the cursor to give
    this function for the page before that one (None when this page is the first). The same
    index as `messages_page`, read the other way."""
    rows = queryset.defer("raw").order_by("created_at", "id")
    position = cursor_decode(cursor)
    if position is not None:
        created_at, pk = position
        rows = rows.filter(Q(created_at__gte=created_at), Q(created_at__gt=created_at) | Q(id__gt=pk))
    page = list(rows[: size + 1])
    more = len(page) > size
    page = page[:size][::-1]
    return page, (cursor_encode(page[0]) if more and page else None)


class _Echo:
    def write(self, value):
        return value


def _csv_lines(header: list[str], rows):
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(header)  # a BOM: spreadsheet software reads the file as UTF-8
    for row in rows:
        yield writer.writerow(["" if value is None else _safe(value) for value in row])


def _safe(value) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    text = value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def messages_csv(queryset):
    """The CSV lines of these messages (one per recipient), read CSV_CHUNK rows at a time."""
    header = ["received", "message_id", "sender", "subject", "status", "recipient", "recipient_status", "reply"]
    fields = ("created_at", "message_id", "sender", "subject", "status", "recipients")

    def rows():
        for created_at, message_id, sender, subject, status, recipients in (
            queryset.order_by("-created_at", "-id").values_list(*fields).iterator(chunk_size=CSV_CHUNK)
        ):
            for entry in recipients or [{}]:
                yield [
                    timezone.localtime(created_at),
                    message_id,
                    sender,
                    subject,
                    status,
                    entry.get("address", ""),
                    entry.get("status", ""),
                    entry.get("reply", ""),
                ]

    return _csv_lines(header, rows())


def errors_csv(*, hosting: Hosting, since: datetime.date | None = None, until: datetime.date | None = None):
    """The CSV lines of the hosting's delivery errors in [since, until] (local days), newest first."""
    errors = DeliveryError.objects.filter(hosting=hosting)
    if since:
        errors = errors.filter(created_at__gte=_local_midnight(since))
    if until:
        errors = errors.filter(created_at__lt=_local_midnight(until + datetime.timedelta(days=1)))
    header = ["date", "recipient", "reply", "subject", "origin", "permanent", "status"]
    fields = ("created_at", "recipient", "reply", "subject", "kind", "permanent", "status")
    rows = (
        [timezone.localtime(row[0]), *row[1:5], "yes" if row[5] else "no", row[6]]
        for row in errors.order_by("-created_at", "-id").values_list(*fields).iterator(chunk_size=CSV_CHUNK)
    )
    return _csv_lines(header, rows)


def csv_filename(hosting: Hosting, what: str) -> str:
    return f"{hosting.service_name}-{what}-{timezone.localdate():%Y%m%d}.csv"
