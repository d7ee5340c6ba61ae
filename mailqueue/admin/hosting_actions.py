"""The operators' actions on hostings: from the list (a selection) or from a hosting's page
(its buttons), always through a confirmation page that asks for a comment or a reason, then
through the same service functions as the portal and the API, as the operator."""

import dataclasses

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from hosting.models import Hosting
from mailqueue.actions import CUSTOMER_ACTIONS
from mailqueue.admin.bulk import CommentForm, LimitForm, ReasonForm, RecipientForm, SenderDomainsForm, form_action
from mailqueue.blocking import mail_service_block, mail_service_force_reset, mail_service_unblock
from mailqueue.hourly_limit import mail_service_limit_set
from mailqueue.models import Action, BlockReason
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.selectors import mail_service_get
from mailqueue.sender_policy import mail_service_sender_domains_set
from mailqueue.state import Actor, transition_refusal

ACT_PERMISSION = "mailqueue.act_on_mailservice"

# What the operator reads once an action is done, by number of hostings changed.
DONE = {
    "block": ngettext_lazy(
        "Sending blocked for %(count)d hosting.", "Sending blocked for %(count)d hostings.", "count"
    ),
    "block_spam": ngettext_lazy(
        "Sending blocked for spam for %(count)d hosting.", "Sending blocked for spam for %(count)d hostings.", "count"
    ),
    "unblock": ngettext_lazy(
        "Sending unblocked for %(count)d hosting.", "Sending unblocked for %(count)d hostings.", "count"
    ),
    "purge": ngettext_lazy(
        "Purge requested for %(count)d hosting.", "Purge requested for %(count)d hostings.", "count"
    ),
    "cancel_purge": ngettext_lazy(
        "Purge cancelled for %(count)d hosting.", "Purge cancelled for %(count)d hostings.", "count"
    ),
    "reset_force": ngettext_lazy(
        "Normal error tolerance restored for %(count)d hosting.",
        "Normal error tolerance restored for %(count)d hostings.",
        "count",
    ),
}

# The buttons of a hosting's page, in this order, each shown when the state allows it.
PAGE_ACTIONS = {
    "block": Action.BLOCK,
    "block_spam": Action.BLOCK,
    "unblock": Action.UNBLOCK,
    "purge": Action.PURGE,
    "cancel_purge": Action.CANCEL_PURGE,
    "reset_force": Action.RESET_FORCE,
    "change_recipient": Action.CHANGE_RECIPIENT,
    "set_limit": Action.SET_LIMIT,
    "set_sender_domains": Action.SET_SENDER_DOMAINS,
}


@dataclasses.dataclass(frozen=True)
class PageLink:
    label: str
    url: str


class HostingActions:
    """ModelAdmin mixin of HostingAdmin: the actions, and the page that runs one on one hosting."""

    actions = list(PAGE_ACTIONS)

    def has_act_permission(self, request):
        return request.user.has_perm(ACT_PERMISSION)

    def get_urls(self):
        # Before Django's own: its "<object_id>/" catch-all would take these URLs too.
        act = path(
            "<path:object_id>/act/<str:action>/",
            self.admin_site.admin_view(self.page_action_view),
            name="hosting_hosting_act",
        )
        return [act, *super().get_urls()]

    def page_actions(self, request, hosting) -> list[PageLink]:
        """The buttons this user may press on this hosting's page now (the view decides, not the template)."""
        allowed = self.get_actions(request)
        service = mail_service_get(hosting=hosting)
        actor = Actor.operator(request.user)
        return [
            PageLink(allowed[name][2], reverse("admin:hosting_hosting_act", args=[hosting.pk, name]))
            for name, action in PAGE_ACTIONS.items()
            if name in allowed and transition_refusal(service=service, action=action, actor=actor) is None
        ]

    def page_action_view(self, request, object_id, action):
        """One action on one hosting, from its page: the same confirmation and code as from the list."""
        hosting = self.get_object(request, unquote(object_id))
        if hosting is None:
            raise Http404
        allowed = self.get_actions(request)
        if action not in PAGE_ACTIONS or action not in allowed:
            raise PermissionDenied
        page_url = reverse("admin:hosting_hosting_change", args=[hosting.pk])
        run = allowed[action][0]
        response = run(self, request, Hosting.objects.filter(pk=hosting.pk), cancel_url=page_url)
        return response or redirect(page_url)

    def _confirmed(self, request, queryset, form_class, title, apply, done, cancel_url):
        return form_action(self, request, queryset, form_class, title, apply, done, cancel_url=cancel_url)

    @admin.action(description=CUSTOMER_ACTIONS["block"].label, permissions=["act"])
    def block(self, request, queryset, cancel_url=None):
        """Asks for the comment the customer's notice will carry (SPEC §10.3), then blocks."""
        return self._confirmed(
            request,
            queryset,
            CommentForm,
            CUSTOMER_ACTIONS["block"].label,
            lambda hosting, actor, data: mail_service_block(
                hosting=hosting, actor=actor, reason=BlockReason.OPERATOR, comment=data["comment"]
            ),
            DONE["block"],
            cancel_url,
        )

    @admin.action(description=_("Block sending for spam"), permissions=["act"])
    def block_spam(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            CommentForm,
            _("Block sending for spam"),
            lambda hosting, actor, data: mail_service_block(
                hosting=hosting, actor=actor, reason=BlockReason.SPAM, comment=data["comment"]
            ),
            DONE["block_spam"],
            cancel_url,
        )

    @admin.action(description=CUSTOMER_ACTIONS["unblock"].label, permissions=["act"])
    def unblock(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            CommentForm,
            CUSTOMER_ACTIONS["unblock"].label,
            lambda hosting, actor, data: mail_service_unblock(hosting=hosting, actor=actor, comment=data["comment"]),
            DONE["unblock"],
            cancel_url,
        )

    @admin.action(description=CUSTOMER_ACTIONS["purge"].label, permissions=["act"])
    def purge(self, request, queryset, cancel_url=None):
        """The reason is kept in the Event and in the hosting's admin history."""
        return self._confirmed(
            request,
            queryset,
            ReasonForm,
            CUSTOMER_ACTIONS["purge"].label,
            lambda hosting, actor, data: CUSTOMER_ACTIONS["purge"].call(
                hosting=hosting, actor=actor, comment=data["reason"]
            ),
            DONE["purge"],
            cancel_url,
        )

    @admin.action(description=CUSTOMER_ACTIONS["cancel-purge"].label, permissions=["act"])
    def cancel_purge(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            ReasonForm,
            CUSTOMER_ACTIONS["cancel-purge"].label,
            lambda hosting, actor, data: CUSTOMER_ACTIONS["cancel-purge"].call(
                hosting=hosting, actor=actor, comment=data["reason"]
            ),
            DONE["cancel_purge"],
            cancel_url,
        )

    @admin.action(description=_("Restore the normal error tolerance"), permissions=["act"])
    def reset_force(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            ReasonForm,
            _("Restore the normal error tolerance"),
            lambda hosting, actor, data: mail_service_force_reset(hosting=hosting, actor=actor),
            DONE["reset_force"],
            cancel_url,
        )

    @admin.action(description=_("Change the report recipient"), permissions=["act"])
    def change_recipient(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            RecipientForm,
            _("Change the report recipient"),
            lambda hosting, actor, data: mail_service_recipient_change(
                hosting=hosting, actor=actor, email=data["email"]
            ),
            None,
            cancel_url,
        )

    @admin.action(description=_("Set an hourly limit"), permissions=["act"])
    def set_limit(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            LimitForm,
            _("Set an hourly limit"),
            lambda hosting, actor, data: mail_service_limit_set(hosting=hosting, actor=actor, limit=data["limit"]),
            None,
            cancel_url,
        )

    @admin.action(description=_("Allow sender domains"), permissions=["act"])
    def set_sender_domains(self, request, queryset, cancel_url=None):
        return self._confirmed(
            request,
            queryset,
            SenderDomainsForm,
            _("Allow sender domains"),
            lambda hosting, actor, data: mail_service_sender_domains_set(
                hosting=hosting, actor=actor, domains=data["domains"].split()
            ),
            None,
            cancel_url,
        )
