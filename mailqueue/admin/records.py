"""Operators' read-only lists: messages (never their content), delivery errors, events."""

from django.conf import settings
from django.contrib import admin, messages
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.models import Hosting
from mailqueue.models import (
    DeliveryError,
    Event,
    Message,
)


class ReadOnlyAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
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
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    # Searched by get_search_results below; search_fields only makes Django show the box.
    search_fields = ["=message_id"]
    search_help_text = _(
        "Service name, exact message-id, or exact address of the sender or of a recipient (containing @)."
    )
    exclude = ["raw"]  # never the content
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


@admin.register(DeliveryError)
class DeliveryErrorAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "hosting", "recipient", "reply", "subject"]
    list_select_related = ["hosting"]
    search_fields = ["=hosting__service_name", "=recipient"]
    raw_id_fields = ["hosting", "message"]


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
    list_filter = ["action", "actor_kind"]
    search_fields = ["=hosting__service_name", "actor_label"]
    raw_id_fields = ["hosting", "actor_user"]
