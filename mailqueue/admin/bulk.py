"""Admin actions over a selection of hostings: each hosting through the service, refusals
reported one by one, and the intermediate page of actions that ask for a value (also their
confirmation). Each hosting changed is written in its admin history with the reason given."""

from django import forms
from django.contrib import admin, messages
from django.core.validators import EmailValidator
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from mailqueue.addresses import EMAIL_MAX_LENGTH, email_address_valid
from mailqueue.hourly_limit import LIMIT_MAX
from mailqueue.state import Actor, MailServiceError


class RecipientForm(forms.Form):
    email = forms.CharField(label=_("Error report to"), required=False, max_length=EMAIL_MAX_LENGTH)

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if email and not email_address_valid(email):
            raise forms.ValidationError(EmailValidator.message, code="invalid")  # Django's own wording
        return email


class LimitForm(forms.Form):
    limit = forms.IntegerField(
        label=_("Hourly limit (empty: the plan's limit)"), required=False, min_value=1, max_value=LIMIT_MAX
    )


class SenderDomainsForm(forms.Form):
    domains = forms.CharField(
        label=_("Domains the hosting may also send as (one per line; their subdomains too)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
    )


class CommentForm(forms.Form):
    comment = forms.CharField(
        label=_("Comment for the customer"),
        required=False,
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Kept in the event and written in the notice the customer's report recipient receives."),
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Kept in the hosting's history (the History button of its page)."),
    )


# A hosting's admin history: the action, and the reason or comment given.
HISTORY = _("%(action)s: %(reason)s")
UPDATED = ngettext_lazy("%(count)d hosting updated.", "%(count)d hostings updated.", "count")


def run_for_each(modeladmin, request, queryset, service_call, done_message, history=""):
    """Apply `service_call(hosting, actor)` to each hosting; report refusals one by one, and
    write `history` in the admin history of each hosting changed."""
    actor = Actor.operator(request.user)
    done = 0
    for hosting in queryset.order_by("service_name"):
        try:
            service_call(hosting, actor)
        except MailServiceError as error:
            # Not starting with the service name: the admin capitalises messages ("Site.fr").
            refusal = _("Hosting %(service_name)s: %(message)s")
            modeladmin.message_user(
                request, refusal % {"service_name": hosting.service_name, "message": error.message}, messages.ERROR
            )
        else:
            done += 1
            if history:
                modeladmin.log_change(request, hosting, history)
    if done:
        modeladmin.message_user(request, done_message % {"count": done}, messages.SUCCESS)


def _history(title, data: dict) -> str:
    """What the hosting's admin history says: the action, then the reason or comment given."""
    said = (data.get("reason") or data.get("comment") or "").strip()
    return HISTORY % {"action": title, "reason": said} if said else str(title)


def form_action(modeladmin, request, queryset, form_class, title, apply, done_message=None, *, cancel_url=None):
    """An action that asks for one value first (intermediate page, also its confirmation), then applies it."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        run_for_each(
            modeladmin,
            request,
            queryset,
            lambda hosting, actor: apply(hosting, actor, form.cleaned_data),
            done_message or UPDATED,
            history=_history(title, form.cleaned_data),
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
        "cancel_url": cancel_url or request.get_full_path(),
    }
    return TemplateResponse(request, "admin/mailqueue/action_form.html", context)
