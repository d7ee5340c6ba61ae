"""The portal's forms of API credentials (creation, the validation of a consumer key) and of webhook endpoints."""

import datetime

from django import forms
from django.utils.translation import gettext_lazy as _

from hosting.selectors import customers_of
from mailqueue.models import WebhookEndpoint
from mailqueue.webhooks import CHOOSABLE_EVENTS

# The lifetimes a user may give a consumer key on validation (OVH's choices); None: no expiry.
LIFETIMES = {
    "3600": (datetime.timedelta(hours=1), _("1 hour")),
    "86400": (datetime.timedelta(days=1), _("1 day")),
    "2592000": (datetime.timedelta(days=30), _("30 days")),
    "unlimited": (None, _("Unlimited")),
}
DECISIONS = [("validate", _("Validate")), ("refuse", _("Refuse"))]


class CustomerChoiceForm(forms.Form):
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=None, empty_label=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = customers_of(user)


class CredentialsForm(CustomerChoiceForm):
    """Whole credentials at once: an application, a consumer key and a token, every call granted."""

    name = forms.CharField(label=_("Name"), max_length=100, initial="script")
    field_order = ["name", "customer"]


class ApplicationForm(CustomerChoiceForm):
    """OVH's createApp: an application that asks for consumer keys, each validated by a user."""

    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(label=_("Description"), max_length=1000, required=False, widget=forms.Textarea)
    field_order = ["name", "description", "customer"]


class ValidationForm(CustomerChoiceForm):
    # Needed to validate, not to refuse (a user of no customer may still refuse).
    customer = forms.ModelChoiceField(
        label=_("For the customer account"), queryset=None, empty_label=None, required=False
    )
    lifetime = forms.ChoiceField(
        label=_("Validity"),
        choices=[(value, label) for value, (_delta, label) in LIFETIMES.items()],
        initial="86400",
        widget=forms.RadioSelect,
    )
    decision = forms.ChoiceField(choices=DECISIONS)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "validate" and not cleaned.get("customer") and "customer" not in self.errors:
            self.add_error("customer", forms.ValidationError(self.fields["customer"].error_messages["required"]))
        return cleaned

    def lifetime_delta(self) -> datetime.timedelta | None:
        return LIFETIMES[self.cleaned_data["lifetime"]][0]


def _webhook_url_field() -> forms.URLField:
    return forms.URLField(
        label=_("URL"),
        max_length=WebhookEndpoint._meta.get_field("url").max_length,
        assume_scheme="https",
        help_text=_("http:// or https://, on a public address: where the events are POSTed."),
        widget=forms.TextInput(attrs={"inputmode": "url", "autocomplete": "url"}),
    )


def _webhook_events_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=_("Events"),
        choices=[(event.value, event.label) for event in CHOOSABLE_EVENTS],
        widget=forms.CheckboxSelectMultiple,
    )


class WebhookEndpointForm(CustomerChoiceForm):
    """A new endpoint: where, which events, for which of the user's customers."""

    url = _webhook_url_field()
    events = _webhook_events_field()
    field_order = ["url", "events", "customer"]


class WebhookEndpointChangeForm(forms.Form):
    url = _webhook_url_field()
    events = _webhook_events_field()
    active = forms.BooleanField(
        label=_("Active"), required=False, help_text=_("Turning it back on forgets its past failures.")
    )
