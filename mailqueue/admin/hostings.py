"""Operators' list and page of hostings with their mail service: the page links to the hosting's
messages, errors and events, and carries the buttons of the actions (`hosting_actions`)."""

from collections.abc import Callable

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.admin_titles import ProductTitles, yes_no
from hosting.forms import HostingForm
from hosting.models import Hosting
from mailqueue.admin.hosting_actions import ACT_PERMISSION, HostingActions, PageLink
from mailqueue.models import DailyCounter, Event, MailService, Message, State
from mailqueue.provisioning import mail_service_create

__all__ = ["ACT_PERMISSION", "HostingAdmin", "PageLink"]

RECENT_EVENTS = 20


class MailServiceInline(admin.StackedInline):
    model = MailService
    can_delete = False
    fields = readonly_fields = [
        "state",
        "block_reason",
        "forced_shown",
        "report_to",
        "hourly_limit_override",
        "state_changed_at",
        "purge_due_at",
        "purge_started_at",
        "spam_purged_at",
        "support_only_shown",
        "allowed_sender_domains",
    ]

    # Django shows a read-only boolean as an icon whose text is "True" or "False", in English.
    @admin.display(description=MailService._meta.get_field("forced").verbose_name)
    def forced_shown(self, service):
        return yes_no(service.forced)

    @admin.display(description=MailService._meta.get_field("support_only").verbose_name)
    def support_only_shown(self, service):
        return yes_no(service.support_only)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("Error report to"))
    def report_to(self, service):
        """Who receives the reports: the recipient set, else the customer's contact, said so."""
        if service.report_recipient:
            return service.report_recipient
        return format_html("{} ({})", service.effective_report_recipient, _("default: the customer's contact e-mail"))


class MailServiceStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return State.choices

    def queryset(self, request, queryset):
        if self.value() in State.values:
            return queryset.filter(mail_service__state=self.value())
        return queryset


def _related_lists(request, hosting) -> list[PageLink]:
    """The admin lists narrowed to this hosting (`HostingFilter`'s `?hosting=`)."""
    lists = [
        (_("E-mails"), "admin:mailqueue_message_changelist", ""),
        (_("Held e-mails"), "admin:mailqueue_message_changelist", "&status__exact=held"),
        (_("E-mails in error"), "admin:mailqueue_deliveryerror_changelist", ""),
        (_("Events"), "admin:mailqueue_event_changelist", ""),
    ]
    return [PageLink(label, f"{reverse(name)}?hosting={hosting.pk}{more}") for label, name, more in lists]


@admin.register(Hosting)
class HostingAdmin(ProductTitles, HostingActions, DeclaredLookupsOnly, admin.ModelAdmin):
    form = HostingForm
    add_title = _("Add a hosting")
    # Narrow columns: the list fits 1366 px with its filters; the recipient is on each hosting's page.
    list_display = ["service_name", "customer", "plan", "state", "hourly_limit"]
    list_select_related = ["customer", "mail_service"]
    list_filter = [MailServiceStateFilter, "mail_service__block_reason", "plan"]
    search_fields = ["service_name", "customer__slug", "customer__name"]
    raw_id_fields = ["customer"]
    readonly_fields = ["held_count", "sent_today", "sent_total", "recent_events", "smtp_password_changed_at"]
    inlines = [MailServiceInline]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count the whole table once per choice
    # What a hosting's page links to, and its buttons; reports adds its own (the arrows go one way).
    page_links: list[Callable] = [_related_lists]
    page_buttons: list[Callable] = []

    def change_view(self, request, object_id, form_url="", extra_context=None):
        hosting = self.get_object(request, unquote(object_id))
        if hosting is not None:
            extra_context = {
                **(extra_context or {}),
                "hosting_links": [link for links in self.page_links for link in links(request, hosting)],
                "hosting_buttons": self.page_actions(request, hosting)
                + [button for buttons in self.page_buttons for button in buttons(self, request, hosting)],
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        """A hosting added here gets its mail service too, as every provisioned hosting."""
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if not change:
                mail_service_create(hosting=obj)

    def get_inline_instances(self, request, obj=None):
        # The mail service row is made by save_model: no inline form for it on the add page.
        return super().get_inline_instances(request, obj) if obj is not None else []

    @admin.display(description=_("state"), ordering="mail_service__state")
    def state(self, hosting):
        """The badge's word, and below it why when blocked (« bloqué par un opérateur »)."""
        service = hosting.mail_service
        if service.block_reason:
            return format_html("{}<br><small>{}</small>", service.state_label, service.get_block_reason_display())
        return service.state_label

    @admin.display(description=_("hourly limit"))
    def hourly_limit(self, hosting):
        return hosting.mail_service.hourly_limit

    @admin.display(description=_("held e-mails"))
    def held_count(self, hosting):
        return Message.objects.filter(hosting=hosting).held().count()

    @admin.display(description=_("sent today"))
    def sent_today(self, hosting):
        counter = DailyCounter.objects.filter(hosting=hosting, day=timezone.localdate()).first()
        return counter.sent if counter else 0

    @admin.display(description=_("total sent"))
    def sent_total(self, hosting):
        return DailyCounter.objects.filter(hosting=hosting).aggregate(total=Sum("sent"))["total"] or 0

    @admin.display(description=_("latest events"))
    def recent_events(self, hosting):
        events = Event.objects.filter(hosting=hosting)[:RECENT_EVENTS]
        return (
            format_html_join(
                "",
                "<div>{} — {} ({} → {}) {} {}</div>",
                (
                    (
                        formats.localize(timezone.localtime(event.created_at)),
                        event.get_action_display(),
                        event.get_from_state_display() or "-",
                        event.get_to_state_display() or "-",
                        event.actor_label,
                        event.message_count if event.message_count is not None else "",
                    )
                    for event in events
                ),
            )
            or "—"
        )
