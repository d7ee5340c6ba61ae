"""Operators' admin: hostings with their mail service, messages, errors, events.

Every action calls the same service functions as the portal and the API, as the operator;
refused transitions are reported per hosting while the others proceed. Support staff (view
permissions only) see everything and can change nothing.
"""

import functools

from django import forms
from django.contrib import admin, messages
from django.core.validators import EmailValidator
from django.db import connection, transaction
from django.db.models import Q, Sum, TextField
from django.db.models.functions import Cast
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.forms import HostingForm
from hosting.models import Hosting
from mailqueue.actions import CUSTOMER_ACTIONS
from mailqueue.addresses import EMAIL_MAX_LENGTH, email_address_valid
from mailqueue.blocking import mail_service_block, mail_service_force_reset
from mailqueue.hourly_limit import LIMIT_MAX, mail_service_limit_set
from mailqueue.models import (
    BlockReason,
    DailyCounter,
    DeliveryError,
    Event,
    MailService,
    Message,
    State,
)
from mailqueue.provisioning import mail_service_create
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.state import Actor, MailServiceError

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
    ]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RecipientForm(forms.Form):
    email = forms.CharField(label=_("Rapport d'erreurs à"), required=False, max_length=EMAIL_MAX_LENGTH)

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if email and not email_address_valid(email):
            raise forms.ValidationError(EmailValidator.message, code="invalid")  # Django's own wording
        return email


class LimitForm(forms.Form):
    limit = forms.IntegerField(
        label=_("Limite horaire (vide : celle de l'offre)"), required=False, min_value=1, max_value=LIMIT_MAX
    )


def _run_for_each(modeladmin, request, queryset, service_call, done_message):
    """Apply `service_call(hosting, actor)` to each hosting; report refusals one by one."""
    actor = Actor.operator(request.user)
    done = 0
    for hosting in queryset.order_by("service_name"):
        try:
            service_call(hosting, actor)
        except MailServiceError as error:
            # Not starting with the service name: the admin capitalises messages ("Site.fr").
            refusal = _("Hébergement %(service_name)s : %(message)s")
            modeladmin.message_user(
                request, refusal % {"service_name": hosting.service_name, "message": error.message}, messages.ERROR
            )
        else:
            done += 1
    if done:
        modeladmin.message_user(request, done_message % {"count": done}, messages.SUCCESS)


def _form_action(modeladmin, request, queryset, form_class, title, apply):
    """An action that asks for one value first (intermediate page), then applies it."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        _run_for_each(
            modeladmin,
            request,
            queryset,
            lambda hosting, actor: apply(hosting, actor, form.cleaned_data),
            _("%(count)d hébergement(s) modifié(s)."),
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "hostings": queryset,
        "action": request.POST.get("action"),
        "opts": modeladmin.model._meta,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/mailqueue/action_form.html", context)


class MailServiceStateFilter(admin.SimpleListFilter):
    title = _("état")
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

    @admin.display(description=_("état"), ordering="mail_service__state")
    def state(self, hosting):
        return hosting.mail_service.state_label

    @admin.display(description=_("raison du blocage"))
    def block_reason(self, hosting):
        return hosting.mail_service.get_block_reason_display() or "—"

    @admin.display(description=_("rapport d'erreurs à"))
    def report_recipient(self, hosting):
        return hosting.mail_service.report_recipient or "—"

    @admin.display(description=_("limite horaire"))
    def hourly_limit(self, hosting):
        return hosting.mail_service.hourly_limit

    @admin.display(description=_("e-mails en attente"))
    def held_count(self, hosting):
        return Message.objects.filter(hosting=hosting).held().count()

    @admin.display(description=_("envoyés aujourd'hui"))
    def sent_today(self, hosting):
        counter = DailyCounter.objects.filter(hosting=hosting, day=timezone.localdate()).first()
        return counter.sent if counter else 0

    @admin.display(description=_("total envoyés"))
    def sent_total(self, hosting):
        return DailyCounter.objects.filter(hosting=hosting).aggregate(total=Sum("sent"))["total"] or 0

    @admin.display(description=_("derniers événements"))
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
        if slug == "block":  # an operator's block says so (SPEC §3 reasons)
            call = functools.partial(mail_service_block, reason=BlockReason.OPERATOR)
        _run_for_each(
            self, request, queryset, lambda hosting, actor: call(hosting=hosting, actor=actor), action.admin_done_text
        )

    @admin.action(description=CUSTOMER_ACTIONS["block"].label, permissions=["act"])
    def block(self, request, queryset):
        self._customer_action(request, queryset, "block")

    @admin.action(description=_("Bloquer l'envoi pour spam"), permissions=["act"])
    def block_spam(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_block(hosting=hosting, actor=actor, reason=BlockReason.SPAM),
            _("Envoi bloqué pour spam pour %(count)d hébergement(s)."),
        )

    @admin.action(description=CUSTOMER_ACTIONS["unblock"].label, permissions=["act"])
    def unblock(self, request, queryset):
        self._customer_action(request, queryset, "unblock")

    @admin.action(description=CUSTOMER_ACTIONS["purge"].label, permissions=["act"])
    def purge(self, request, queryset):
        self._customer_action(request, queryset, "purge")

    @admin.action(description=CUSTOMER_ACTIONS["cancel-purge"].label, permissions=["act"])
    def cancel_purge(self, request, queryset):
        self._customer_action(request, queryset, "cancel-purge")

    @admin.action(description=_("Rétablir la tolérance d'erreurs normale"), permissions=["act"])
    def reset_force(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_force_reset(hosting=hosting, actor=actor),
            _("Tolérance d'erreurs normale rétablie pour %(count)d hébergement(s)."),
        )

    @admin.action(description=_("Changer le destinataire des rapports"), permissions=["act"])
    def change_recipient(self, request, queryset):
        return _form_action(
            self,
            request,
            queryset,
            RecipientForm,
            _("Changer le destinataire des rapports"),
            lambda hosting, actor, data: mail_service_recipient_change(
                hosting=hosting, actor=actor, email=data["email"]
            ),
        )

    @admin.action(description=_("Imposer une limite horaire"), permissions=["act"])
    def set_limit(self, request, queryset):
        return _form_action(
            self,
            request,
            queryset,
            LimitForm,
            _("Imposer une limite horaire"),
            lambda hosting, actor, data: mail_service_limit_set(hosting=hosting, actor=actor, limit=data["limit"]),
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
        "Nom du service, message-id exact, ou adresse exacte de l'expéditeur ou d'un destinataire (contenant @)."
    )
    exclude = ["raw"]  # never the content
    raw_id_fields = ["hosting"]
    date_hierarchy = None

    def get_queryset(self, request):
        # The content is never shown: never read it either (up to MAX_MESSAGE_BYTES a row).
        return super().get_queryset(request).defer("raw")

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
