"""The customer's API credentials page: create (secrets shown once), list, revoke."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from api.models import ApiApplication, ApiToken
from api.services import api_application_revoke, api_credentials_create, api_token_revoke
from hosting.selectors import customers_of


class CredentialsForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, initial="script")
    customer = forms.ModelChoiceField(label=_("Customer"), queryset=None, empty_label=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = customers_of(user)


@login_required
@require_http_methods(["GET", "POST"])
def credentials(request):
    form = CredentialsForm(request.POST or None, user=request.user)
    created = None
    if request.method == "POST" and form.is_valid():
        created = api_credentials_create(
            customer=form.cleaned_data["customer"], name=form.cleaned_data["name"], user=request.user
        )
        form = CredentialsForm(user=request.user)
    customers = customers_of(request.user)
    context = {
        "form": form,
        "created": created,
        "applications": ApiApplication.objects.filter(customer__in=customers).select_related("customer"),
        "tokens": ApiToken.objects.filter(customer__in=customers).select_related("customer"),
    }
    response = render(request, "api/credentials.html", context, status=400 if form.errors else 200)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def application_revoke(request, pk):
    application = get_object_or_404(ApiApplication, pk=pk, customer__in=customers_of(request.user))
    api_application_revoke(application=application)
    messages.success(request, _("The application has been revoked."))
    return redirect("api-credentials")


@login_required
@require_POST
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, customer__in=customers_of(request.user))
    api_token_revoke(token=token)
    messages.success(request, _("The token has been revoked."))
    return redirect("api-credentials")
