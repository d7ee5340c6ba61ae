"""Operators' list of error digests, and sending a hosting's digest of a day again (from the
list's selection or from the hosting's page), through `error_digest_resend`, after a confirmation
with a reason that stays in the hosting's admin history."""

import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from hosting.models import Hosting
from mailqueue.admin import ACT_PERMISSION, HostingAdmin, HostingFilter, PageLink, ReadOnlyAdmin
from mailqueue.admin.bulk import HISTORY
from reports.models import DigestStatus, ErrorDigest
from reports.services import error_digest_resend

RESEND = _("Send the error report again")


class ResendSelectionForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Kept in the hosting's history (the History button of its page)."),
    )


class ResendForm(ResendSelectionForm):
    day = forms.DateField(label=_("Day of the errors"))
    field_order = ["day", "reason"]


@admin.register(ErrorDigest)
class ErrorDigestAdmin(ReadOnlyAdmin):
    list_display = ["day", "hosting", "status", "recipient", "error_count", "attempts", "sent_at"]
    list_select_related = ["hosting"]
    list_filter = [HostingFilter, "status", "day"]
    search_fields = ["=hosting__service_name", "recipient"]
    raw_id_fields = ["hosting"]
    actions = ["resend"]

    def object_title(self, obj) -> str:
        return str(obj)  # « Rapport d'erreurs de example.org du 30 novembre 2026 (envoyé) »

    def has_act_permission(self, request):
        return request.user.has_perm(ACT_PERMISSION)

    def get_urls(self):
        resend = path("resend/<int:hosting_id>/", self.admin_site.admin_view(self.resend_view), name="reports_resend")
        return [resend, *super().get_urls()]

    @admin.action(description=RESEND, permissions=["act"])
    def resend(self, request, queryset):
        """The selected digests again, after a confirmation with a reason."""
        digests = list(queryset.select_related("hosting").order_by("day", "hosting__service_name"))
        form = ResendSelectionForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            _resend_all(self, request, [(digest.hosting, digest.day) for digest in digests], form.cleaned_data)
            return None
        return _confirmation(self, request, form, digests=digests, action="resend")

    def resend_view(self, request, hosting_id):
        """From a hosting's page: its digest of a day (yesterday unless told), again."""
        if not self.has_act_permission(request):
            raise PermissionDenied
        hosting = get_object_or_404(Hosting, pk=hosting_id)
        page_url = reverse("admin:hosting_hosting_change", args=[hosting.pk])
        yesterday = timezone.localdate() - datetime.timedelta(days=1)
        form = ResendForm(request.POST if "apply" in request.POST else None, initial={"day": yesterday})
        if "apply" in request.POST and form.is_valid():
            _resend_all(self, request, [(hosting, form.cleaned_data["day"])], form.cleaned_data)
            return redirect(page_url)
        return _confirmation(self, request, form, hostings=[hosting], cancel_url=page_url)


def _resend_all(modeladmin, request, work, data) -> None:
    """Resend each (hosting, day); say what went out, what failed and what had nothing to send."""
    sent = 0
    for hosting, day in work:
        digest = error_digest_resend(hosting=hosting, day=day)
        values = {"service_name": hosting.service_name, "day": formats.date_format(day)}
        if digest is None:
            text = _("Hosting %(service_name)s: no error on %(day)s, or the report is being sent.")
            modeladmin.message_user(request, text % values, messages.WARNING)
        elif digest.status != DigestStatus.SENT:
            text = _("Hosting %(service_name)s: the report of %(day)s could not be sent (%(error)s).")
            modeladmin.message_user(request, text % {**values, "error": digest.last_error}, messages.ERROR)
        else:
            sent += 1
            said = _("Error report of %(day)s sent again to %(recipient)s") % {**values, "recipient": digest.recipient}
            modeladmin.log_change(request, hosting, HISTORY % {"action": said, "reason": data["reason"]})
    if sent:
        done = ngettext("%(count)d error report sent again.", "%(count)d error reports sent again.", sent)
        modeladmin.message_user(request, done % {"count": sent}, messages.SUCCESS)


def _confirmation(modeladmin, request, form, *, hostings=(), digests=(), action="", cancel_url=None):
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": RESEND,
        "form": form,
        "hostings": hostings,
        "digests": digests,
        "action": action,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "cancel_url": cancel_url or request.get_full_path(),
    }
    return TemplateResponse(request, "admin/reports/resend_form.html", context)


def _digest_links(request, hosting) -> list[PageLink]:
    return [PageLink(_("Error reports"), f"{reverse('admin:reports_errordigest_changelist')}?hosting={hosting.pk}")]


def _resend_button(hosting_admin, request, hosting) -> list[PageLink]:
    if not request.user.has_perm(ACT_PERMISSION):
        return []
    return [PageLink(RESEND, reverse("admin:reports_resend", args=[hosting.pk]))]


# The hosting's page links to its digests and offers to resend one (mailqueue knows nothing of reports).
HostingAdmin.page_links.append(_digest_links)
HostingAdmin.page_buttons.append(_resend_button)
