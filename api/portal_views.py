"""The customer's API credentials page: create applications and whole credentials (secrets shown
once), list applications, consumer keys and tokens with their rules, revoke them."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from api.forms import ApplicationForm, CredentialsForm
from api.models import CredentialStatus
from api.selectors import applications_of, consumer_keys_visible_to, tokens_of
from api.services import (
    api_application_create,
    api_application_revoke,
    api_credentials_create,
    api_token_revoke,
    consumer_key_revoke,
)

APPLICATION_PREFIX = "application"


def _page(request, *, form=None, application_form=None, created=None, created_application=None):
    form = form or CredentialsForm(user=request.user)
    application_form = application_form or ApplicationForm(user=request.user, prefix=APPLICATION_PREFIX)
    now = timezone.now()
    consumer_keys = list(consumer_keys_visible_to(request.user))
    for consumer_key in consumer_keys:
        consumer_key.status_now = consumer_key.status_at(now)
        consumer_key.status_label = consumer_key.status_label_at(now)
        consumer_key.revocable = consumer_key.status_now in (CredentialStatus.VALIDATED, CredentialStatus.PENDING)
    context = {
        "form": form,
        "application_form": application_form,
        "created": created,
        "created_application": created_application,
        "applications": applications_of(request.user),
        "consumer_keys": consumer_keys,
        "tokens": tokens_of(request.user),
    }
    status = 400 if form.errors or application_form.errors else 200
    response = render(request, "api/credentials.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def credentials(request):
    """GET: the page. POST: whole credentials (an application, a validated consumer key with every
    call granted, a token), shown once."""
    form = CredentialsForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        created = api_credentials_create(
            customer=form.cleaned_data["customer"], name=form.cleaned_data["name"], user=request.user
        )
        return _page(request, created=created)
    return _page(request, form=form)


@login_required
@require_POST
def application_create(request):
    """An application (OVH's createApp): its key and secret, shown once."""
    form = ApplicationForm(request.POST, user=request.user, prefix=APPLICATION_PREFIX)
    if not form.is_valid():
        return _page(request, application_form=form)
    created = api_application_create(
        customer=form.cleaned_data["customer"],
        name=form.cleaned_data["name"],
        description=form.cleaned_data["description"],
        user=request.user,
    )
    return _page(request, created_application=created)


@login_required
@require_POST
def application_revoke(request, pk):
    application = get_object_or_404(applications_of(request.user), pk=pk)
    api_application_revoke(application=application)
    messages.success(request, _("The application has been revoked."))
    return redirect("api-credentials")


@login_required
@require_POST
def consumer_key_revoke_view(request, pk):
    consumer_key = get_object_or_404(consumer_keys_visible_to(request.user), pk=pk)
    consumer_key_revoke(consumer_key=consumer_key)
    messages.success(request, _("The consumer key has been revoked."))
    return redirect("api-credentials")


@login_required
@require_POST
def token_revoke(request, pk):
    token = get_object_or_404(tokens_of(request.user), pk=pk)
    api_token_revoke(token=token)
    messages.success(request, _("The token has been revoked."))
    return redirect("api-credentials")
