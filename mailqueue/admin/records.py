"""Operators' read-only lists: messages (never their content, their recipients as a table),
delivery errors, events; each can be narrowed to one hosting (`?hosting=<id>`, from its page)."""

from django.conf import settings
from django.contrib import admin, messages
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.admin_titles import ProductTitles, yes_no
from hosting.models import Hosting
from mailqueue.models import (
    DeliveryError,
    Event,
    Message,
    RecipientStatus,
)


class HostingFilter(admin.SimpleListFilter):
    """One hosting's rows, as linked from its page: shown while chosen, never a list of every hosting."""

    title = _("hosting")
    parameter_name = "hosting"

    def _hosting(self):
        value = self.value() or ""
        return Hosting.objects.filter(pk=int(value)).first() if value.isdigit() else None

    def lookups(self, request, model_admin):
        hosting = self._hosting()
        return [(str(hosting.pk), hosting.service_name)] if hosting else []

    def queryset(self, request, queryset):
        return queryset.filter(hosting_id=int(self.value())) if (self.value() or "").isdigit() else queryset


class ReadOnlyAdmin(ProductTitles, DeclaredLookupsOnly, admin.ModelAdmin):
    """Rows written only by the product's services: nobody edits or deletes them here."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count the whole table once per choice

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "hosting", "status", "sender", "subject", "recipient_count", "created_at", "attempts"]
    list_select_related = ["hosting"]
    list_filter = [HostingFilter, "status", ("created_at", admin.DateFieldListFilter)]
    # Searched by get_search_results below; search_fields only makes Django show the box.
    search_fields = ["=message_id"]
    search_help_text = _(
        "Service name, exact message-id, or exact address of the sender or of a recipient (containing @)."
    )
    # Never the content (`raw`); the recipients as a table, not as their stored JSON.
    fields = [
        "hosting",
        "message_id",
        "status",
        "sender",
        "recipient_table",
        "subject",
        "size",
        "created_at",
        "held_at",
        "held_until",
        "next_attempt_at",
        "attempts",
        "claimed_at",
        "completed_at",
        "last_reply",
        "door",
        "client_address",
        "spam_score",
        "spam_rules",
    ]
    readonly_fields = ["recipient_table"]
    raw_id_fields = ["hosting"]
    date_hierarchy = None

    def get_queryset(self, request):
        # The content is never shown: never read it either (up to MAX_MESSAGE_BYTES a row).
        return super().get_queryset(request).defer("raw")

    def changelist_view(self, request, extra_context=None):
        if not settings.SPAMD_URL:
            self.message_user(
                request,
                _("Outbound spam scanning is off: SPAMD_URL is not set, no e-mail is scanned before delivery."),
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("recipients"))
    def recipient_table(self, message):
        """Each recipient: address, status, SMTP code and reply, and what a later report said."""
        statuses = dict(RecipientStatus.choices)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    recipient.get("address", ""),
                    capfirst(statuses.get(recipient.get("status"), recipient.get("status") or "—")),
                    recipient.get("code") or "—",
                    recipient.get("reply") or "—",
                    _later_report(recipient),
                )
                for recipient in message.recipients or []
            ),
        )
        return format_html(
            '<table class="recipients"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            _("E-mail"),
            _("Status"),
            _("Code"),
            _("Reply"),
            _("Later report"),
            rows,
        )

    def get_search_results(self, request, queryset, search_term):
        """One exact term: a service name, a message-id, or a sender or recipient address.

        Exact lookups on indexed columns (the service resolved first, on the small hostings
        table) keep a search on millions of messages an index scan; addresses (terms with
        "@") also look at sender and recipients, which no index covers.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        hosting_ids = list(Hosting.objects.filter(service_name__iexact=term).values_list("pk", flat=True)[:1])
        condition = Q(hosting_id__in=hosting_ids) | Q(message_id=term)
        is_message_id = term.startswith("<") and term.endswith(">")  # no address has brackets
        if "@" in term and " " not in term and not is_message_id:
            condition |= Q(sender=term)
            condition |= Q(message_id=f"<{term}>")
            if connection.vendor == "postgresql":
                condition |= Q(recipients__contains=[{"address": term}])
            else:  # SQLite has no JSON containment: match the stored JSON text
                queryset = queryset.alias(recipients_text=Cast("recipients", TextField()))
                condition |= Q(recipients_text__icontains=f'"{term}"')
        return queryset.filter(condition), False


def _later_report(recipient: dict) -> str:
    """A delivery report received after the relay took the message (mailqueue.bounces), or "—"."""
    for key, label in (("bounce", _("bounced")), ("delayed", _("delayed"))):
        note = recipient.get(key)
        if note:
            return f"{label}: {note.get('status') or ''} {note.get('diagnostic') or ''}".strip()
    return "—"


@admin.register(DeliveryError)
class DeliveryErrorAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "hosting", "recipient", "reply", "subject"]
    list_select_related = ["hosting"]
    list_filter = [HostingFilter, "kind", "permanent"]
    search_fields = ["=hosting__service_name", "=recipient"]
    raw_id_fields = ["hosting", "message"]
    fields = ["hosting", "message", "created_at", "recipient", "reply", "subject", "kind", "permanent_shown", "status"]
    readonly_fields = ["permanent_shown"]

    @admin.display(description=DeliveryError._meta.get_field("permanent").verbose_name)
    def permanent_shown(self, error):
        return yes_no(error.permanent)  # Django's read-only boolean says "True" or "False", in English


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "hosting",
        "action",
        "from_state",
        "to_state",
        "reason",
        "actor_kind",
        "actor_label",
        "message_count",
    ]
    list_select_related = ["hosting"]
    list_filter = [HostingFilter, "action", "actor_kind"]
    search_fields = ["=hosting__service_name", "actor_label"]
    raw_id_fields = ["hosting", "actor_user"]

    def object_title(self, obj) -> str:
        return capfirst(str(obj))  # « Blocage, example.org, 30 novembre 2026 14:03 »
