"""Operators' lists of what comes back after delivery (SPEC §10.1, §10.2): suppressed addresses
(removed in bulk through `suppressions_remove`, per hosting), complaints and the bounces nobody
could attribute (read-only; their content shown as text, never as HTML)."""

import email
import email.policy
from collections import defaultdict

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from hosting.models import Hosting
from mailqueue.admin.records import ReadOnlyAdmin
from mailqueue.models import Complaint, Message, Suppression, UnattributedBounce
from mailqueue.state import Actor, MailServiceError
from mailqueue.suppression import address_key, suppressions_remove

REMOVE_PERMISSION = "mailqueue.delete_suppression"
# Addresses per removal (one Event each): a whole list selected stays within a query's parameters.
REMOVE_BATCH = 1_000
# How much of an unattributed bounce the operator reads: its headers, then the first KB of its text.
HEADERS_MAX_CHARS = 16_384
TEXT_MAX_CHARS = 8_192


def _hostings_named(term: str) -> list[int]:
    """The hosting a search term names exactly, resolved on the small hostings table first."""
    return list(Hosting.objects.filter(service_name__iexact=term).values_list("pk", flat=True)[:1])


class InForceFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", _("in force")), ("no", _("past its time"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(expires_at__gt=timezone.now())
        if self.value() == "no":
            return queryset.filter(expires_at__lte=timezone.now())
        return queryset


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ["address", "hosting", "created_at", "expires_at", "reason"]
    list_select_related = ["hosting"]
    list_filter = [InForceFilter, ("created_at", admin.DateFieldListFilter)]
    ordering = ["-id"]  # the primary key's index: no sort of the whole table (ids follow the dates)
    # Searched by get_search_results below; search_fields only makes Django show the box.
    search_fields = ["address"]
    search_help_text = _("Part of the address, or the exact service name of a hosting.")
    raw_id_fields = ["hosting"]
    actions = ["remove"]

    def has_remove_permission(self, request):
        return request.user.has_perm(REMOVE_PERMISSION)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(hosting_id__in=_hostings_named(term)) | Q(address__contains=address_key(term))
        return queryset.filter(condition), False

    @admin.action(description=_("Remove the selected addresses"), permissions=["remove"])
    def remove(self, request, queryset):
        """`suppressions_remove` per hosting (one Event per REMOVE_BATCH addresses), as the operator."""
        addresses = defaultdict(list)
        for hosting_id, address in queryset.order_by().values_list("hosting_id", "address"):
            addresses[hosting_id].append(address)
        actor = Actor.operator(request.user)
        removed = hostings_done = 0
        for hosting in Hosting.objects.filter(pk__in=addresses).order_by("service_name"):
            listed = addresses[hosting.pk]
            try:
                for start in range(0, len(listed), REMOVE_BATCH):
                    removed += suppressions_remove(
                        hosting=hosting, addresses=listed[start : start + REMOVE_BATCH], actor=actor
                    )
            except MailServiceError as error:
                refusal = _("Hosting %(service_name)s: %(message)s")
                self.message_user(
                    request, refusal % {"service_name": hosting.service_name, "message": error.message}, messages.ERROR
                )
            else:
                hostings_done += 1
        if hostings_done:
            if hostings_done == 1:
                done = ngettext(
                    "%(count)d address removed from the suppression list of %(hostings)d hosting.",
                    "%(count)d addresses removed from the suppression list of %(hostings)d hosting.",
                    removed,
                )
            else:
                done = ngettext(
                    "%(count)d address removed from the suppression lists of %(hostings)d hostings.",
                    "%(count)d addresses removed from the suppression lists of %(hostings)d hostings.",
                    removed,
                )
            self.message_user(request, done % {"count": removed, "hostings": hostings_done}, messages.SUCCESS)


@admin.register(Complaint)
class ComplaintAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "hosting", "recipient", "feedback_type", "reporter", "message_link"]
    list_select_related = ["hosting"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    search_fields = ["recipient"]
    search_help_text = _("Exact service name of a hosting, or exact address of the complainant.")
    fields = ["created_at", "hosting", "recipient", "feedback_type", "reporter", "message_link"]
    readonly_fields = fields

    def get_queryset(self, request):
        # Messages go with the retention while complaints stay: link only to those still there.
        still_there = Exists(Message.objects.filter(pk=OuterRef("message_id")))
        return super().get_queryset(request).annotate(message_kept=still_there)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(hosting_id__in=_hostings_named(term)) | Q(recipient=term)), False

    @admin.display(description=_("e-mail"))
    def message_link(self, complaint):
        if complaint.message_id is None:
            return "—"
        if not complaint.message_kept:
            return _("deleted (retention)")
        url = reverse("admin:mailqueue_message_change", args=[complaint.message_id])
        return format_html('<a href="{}">{}</a>', url, complaint.message_id)


def _headers_end(raw: bytes) -> int:
    """Where the header block ends (the first empty line), or the whole message if none."""
    ends = [index for index in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if index >= 0]
    return min(ends, default=len(raw))


def _text_of(message) -> str:
    """The readable parts (text/*, delivery status), decoded; HTML parts as their source text."""
    parts = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":  # header blocks, parsed as sub-messages
            text = "\n".join(block.as_string() for block in part.get_payload())
        elif part.is_multipart() or part.get_content_maintype() != "text":
            continue
        else:
            payload = part.get_payload(decode=True) or b""
            try:
                text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:  # an unknown charset name
                text = payload.decode("utf-8", "replace")
        if text.strip():
            parts.append(f"--- {content_type} ---\n{text}")
        if sum(len(text) for text in parts) >= TEXT_MAX_CHARS:
            break
    return "\n".join(parts)


@admin.register(UnattributedBounce)
class UnattributedBounceAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "problem", "envelope_sender", "recipients", "subject", "size"]
    list_filter = ["problem", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=envelope_sender"]
    search_help_text = _("Exact envelope sender.")
    fields = ["created_at", "problem", "envelope_sender", "recipients", "subject", "size", "headers", "text_beginning"]
    readonly_fields = fields

    def get_queryset(self, request):
        # The list never reads the kept messages (up to the door's size limit each).
        return super().get_queryset(request).defer("raw")

    @admin.display(description=_("envelope recipients"))
    def recipients(self, bounce):
        return ", ".join(str(address) for address in bounce.envelope_recipients or []) or "—"

    @admin.display(description=_("headers"))
    def headers(self, bounce):
        raw = bytes(bounce.raw or b"")
        block = raw[: _headers_end(raw)].decode("utf-8", "replace")
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', block[:HEADERS_MAX_CHARS])

    @admin.display(description=_("text (beginning)"))
    def text_beginning(self, bounce):
        raw = bytes(bounce.raw or b"")
        try:
            text = _text_of(email.message_from_bytes(raw, policy=email.policy.compat32))
        except (LookupError, TypeError, ValueError, AttributeError):  # damaged past what the parser forgives
            text = ""
        text = text or raw[_headers_end(raw) :].decode("utf-8", "replace").strip()  # as received
        # format_html escapes: an HTML part is shown as its source, never rendered.
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text[:TEXT_MAX_CHARS])
