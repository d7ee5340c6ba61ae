"""Operators' list and page of hostings with their mail service, and the actions on them.

Every action calls the same service functions as the portal and the API, as the operator."""

from django.contrib import admin
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.forms import HostingForm
from hosting.models import Hosting
from mailqueue.actions import CUSTOMER_ACTIONS
from mailqueue.admin.bulk import CommentForm, LimitForm, RecipientForm, SenderDomainsForm, form_action, run_for_each
from mailqueue.blocking import mail_service_block, mail_service_force_reset, mail_service_unblock
from mailqueue.hourly_limit import mail_service_limit_set
from mailqueue.models import (
    BlockReason,
    DailyCounter,
    Event,
    MailService,
    Message,
    State,
)
from mailqueue.provisioning import mail_service_create
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.sender_policy import mail_service_sender_domains_set

ACT_PERMISSION = "mailqueue.act_on_mailservice"
RECENT_EVENTS = 20


class MailServiceInline(admin.StackedInline):
    model = MailService
    can_delete = False
    fields = readonly_fields = [
        "state",
        "block_reason",
        "forced",
        "report_recipient",
        "hourly_limit_override",
        "state_changed_at",
        "purge_due_at",
        "purge_started_at",
        "spam_purged_at",
        "support_only",
        "allowed_sender_domains",
    ]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MailServiceStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return State.choices

    def queryset(self, request, queryset):
        if self.value() in State.values:
            return queryset.filter(mail_service__state=self.value())
        return queryset


@admin.register(Hosting)
class HostingAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    form = HostingForm
    list_display = ["service_name", "customer", "plan", "state", "block_reason", "report_recipient", "hourly_limit"]
    list_select_related = ["customer", "mail_service"]
    list_filter = [MailServiceStateFilter, "mail_service__block_reason", "plan"]
    search_fields = ["service_name", "customer__slug", "customer__name"]
    raw_id_fields = ["customer"]
    readonly_fields = ["held_count", "sent_today", "sent_total", "recent_events", "smtp_password_changed_at"]
    inlines = [MailServiceInline]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count the whole table once per choice
    actions = [
        "block",
        "block_spam",
        "unblock",
        "purge",
        "cancel_purge",
        "reset_force",
        "change_recipient",
        "set_limit",
        "set_sender_domains",
    ]

    def has_act_permission(self, request):
        return request.user.has_perm(ACT_PERMISSION)

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
        return hosting.mail_service.state_label

    @admin.display(description=_("block reason"))
    def block_reason(self, hosting):
        return hosting.mail_service.get_block_reason_display() or "—"

    @admin.display(description=_("error report to"))
    def report_recipient(self, hosting):
        return hosting.mail_service.report_recipient or "—"

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
                        timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S"),
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

    def _customer_action(self, request, queryset, slug: str):
        action = CUSTOMER_ACTIONS[slug]
        call = action.call
        run_for_each(
            self, request, queryset, lambda hosting, actor: call(hosting=hosting, actor=actor), action.admin_done_text
        )

    @admin.action(description=CUSTOMER_ACTIONS["block"].label, permissions=["act"])
    def block(self, request, queryset):
        """Asks for the comment the customer's notice will carry (SPEC §10.3), then blocks."""
        return form_action(
            self,
            request,
            queryset,
            CommentForm,
            CUSTOMER_ACTIONS["block"].label,
            lambda hosting, actor, data: mail_service_block(
                hosting=hosting, actor=actor, reason=BlockReason.OPERATOR, comment=data["comment"]
            ),
            CUSTOMER_ACTIONS["block"].admin_done_text,
        )

    @admin.action(description=_("Block sending for spam"), permissions=["act"])
    def block_spam(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            CommentForm,
            _("Block sending for spam"),
            lambda hosting, actor, data: mail_service_block(
                hosting=hosting, actor=actor, reason=BlockReason.SPAM, comment=data["comment"]
            ),
            _("Sending blocked for spam for %(count)d hosting(s)."),
        )

    @admin.action(description=CUSTOMER_ACTIONS["unblock"].label, permissions=["act"])
    def unblock(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            CommentForm,
            CUSTOMER_ACTIONS["unblock"].label,
            lambda hosting, actor, data: mail_service_unblock(hosting=hosting, actor=actor, comment=data["comment"]),
            CUSTOMER_ACTIONS["unblock"].admin_done_text,
        )

    @admin.action(description=CUSTOMER_ACTIONS["purge"].label, permissions=["act"])
    def purge(self, request, queryset):
        self._customer_action(request, queryset, "purge")

    @admin.action(description=CUSTOMER_ACTIONS["cancel-purge"].label, permissions=["act"])
    def cancel_purge(self, request, queryset):
        self._customer_action(request, queryset, "cancel-purge")

    @admin.action(description=_("Restore the normal error tolerance"), permissions=["act"])
    def reset_force(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_force_reset(hosting=hosting, actor=actor),
            _("Normal error tolerance restored for %(count)d hosting(s)."),
        )

    @admin.action(description=_("Change the report recipient"), permissions=["act"])
    def change_recipient(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            RecipientForm,
            _("Change the report recipient"),
            lambda hosting, actor, data: mail_service_recipient_change(
                hosting=hosting, actor=actor, email=data["email"]
            ),
        )

    @admin.action(description=_("Allow sender domains"), permissions=["act"])
    def set_sender_domains(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            SenderDomainsForm,
            _("Allow sender domains"),
            lambda hosting, actor, data: mail_service_sender_domains_set(
                hosting=hosting, actor=actor, domains=data["domains"].split()
            ),
        )

    @admin.action(description=_("Set an hourly limit"), permissions=["act"])
    def set_limit(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            LimitForm,
            _("Set an hourly limit"),
            lambda hosting, actor, data: mail_service_limit_set(hosting=hosting, actor=actor, limit=data["limit"]),
        )
