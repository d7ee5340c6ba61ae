"""Operators' admin: hostings with their mail service, messages, errors, events.

Every action calls the same service functions as the portal and the API, as the operator;
refused transitions are reported per hosting while the others proceed. Support staff (view
permissions only) see everything and can change nothing.
"""

from django import forms
from django.contrib import admin, messages
from django.db import connection
from django.db.models import Q, Sum, TextField
from django.db.models.functions import Cast
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue.models import (
    BlockReason,
    DailyCounter,
    DeliveryError,
    Event,
    MailService,
    Message,
    MessageStatus,
    State,
)
from mailqueue.services import (
    Actor,
    MailServiceError,
    mail_service_block,
    mail_service_limit_set,
    mail_service_purge_cancel,
    mail_service_purge_request,
    mail_service_recipient_change,
    mail_service_unblock,
)
from portal.admin_paging import CappedCountPaginator

ACT_PERMISSION = "mailqueue.act_on_mailservice"
RECENT_EVENTS = 20


class MailServiceInline(admin.StackedInline):
    model = MailService
    can_delete = False
    fields = readonly_fields = [
        "state",
        "block_reason",
        "report_recipient",
        "hourly_limit_override",
        "state_changed_at",
        "purge_due_at",
        "purge_started_at",
    ]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RecipientForm(forms.Form):
    email = forms.EmailField(label=_("Rapport d'erreurs à"), required=False, max_length=254)


class LimitForm(forms.Form):
    limit = forms.IntegerField(
        label=_("Limite horaire (vide : celle de l'offre)"), required=False, min_value=1, max_value=1_000_000
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


def _service_of(hosting: Hosting) -> MailService | None:
    """The hosting's mail service row, or None: it is created on first use (hosting_create
    does not make it), and a listing must not fail on a hosting that has none yet."""
    return getattr(hosting, "mail_service", None)


class MailServiceStateFilter(admin.SimpleListFilter):
    """By state, counting a hosting whose service row does not exist yet as active."""

    title = _("état")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return State.choices

    def queryset(self, request, queryset):
        if self.value() == State.ACTIVE:
            return queryset.filter(Q(mail_service__state=State.ACTIVE) | Q(mail_service__isnull=True))
        if self.value() in State.values:
            return queryset.filter(mail_service__state=self.value())
        return queryset


@admin.register(Hosting)
class HostingAdmin(admin.ModelAdmin):
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
    actions = ["block", "block_spam", "unblock", "purge", "cancel_purge", "change_recipient", "set_limit"]

    def has_act_permission(self, request):
        return request.user.has_perm(ACT_PERMISSION)

    @admin.display(description=_("état"), ordering="mail_service__state")
    def state(self, hosting):
        service = _service_of(hosting)
        return service.get_state_display() if service else State.ACTIVE.label

    @admin.display(description=_("raison du blocage"))
    def block_reason(self, hosting):
        service = _service_of(hosting)
        return (service.get_block_reason_display() if service else "") or "—"

    @admin.display(description=_("rapport d'erreurs à"))
    def report_recipient(self, hosting):
        service = _service_of(hosting)
        return (service.report_recipient if service else "") or "—"

    @admin.display(description=_("limite horaire"))
    def hourly_limit(self, hosting):
        service = _service_of(hosting)
        return service.hourly_limit if service else hosting.plan_hourly_limit

    @admin.display(description=_("e-mails en attente"))
    def held_count(self, hosting):
        return Message.objects.filter(hosting=hosting, status=MessageStatus.HELD).count()

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

    @admin.action(description=_("Bloquer l'envoi"), permissions=["act"])
    def block(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_block(hosting=hosting, actor=actor, reason=BlockReason.OPERATOR),
            _("Envoi bloqué pour %(count)d hébergement(s)."),
        )

    @admin.action(description=_("Bloquer l'envoi pour spam"), permissions=["act"])
    def block_spam(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_block(hosting=hosting, actor=actor, reason=BlockReason.SPAM),
            _("Envoi bloqué pour spam pour %(count)d hébergement(s)."),
        )

    @admin.action(description=_("Débloquer l'envoi"), permissions=["act"])
    def unblock(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_unblock(hosting=hosting, actor=actor),
            _("Envoi débloqué pour %(count)d hébergement(s)."),
        )

    @admin.action(description=_("Purger les e-mails"), permissions=["act"])
    def purge(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_purge_request(hosting=hosting, actor=actor),
            _("Purge demandée pour %(count)d hébergement(s)."),
        )

    @admin.action(description=_("Annuler la purge"), permissions=["act"])
    def cancel_purge(self, request, queryset):
        _run_for_each(
            self,
            request,
            queryset,
            lambda hosting, actor: mail_service_purge_cancel(hosting=hosting, actor=actor),
            _("Purge annulée pour %(count)d hébergement(s)."),
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


class ReadOnlyAdmin(admin.ModelAdmin):
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
