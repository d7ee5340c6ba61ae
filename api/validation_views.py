"""The validation page of a requested consumer key (the `validationUrl`, SPEC §9.3).

The link is the capability: whoever holds it and logs in may validate the key for one of their
own customers, with an expiry, or refuse it; then the browser goes to the application's
`redirection` (http or https only). The link works once. Once used, it shows the outcome to the
users of the customer the key acts for, and to the one who decided; to anyone else it is a 404.
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from api.forms import ValidationForm
from api.models import ConsumerKey, CredentialStatus
from api.selectors import consumer_key_for_validation
from api.services import CredentialError, consumer_key_refuse, consumer_key_validate
from hosting.selectors import customers_of

HTTP_GONE = 410
HOST_AND_PORT = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _web_url(url: str) -> bool:
    """An http(s) URL with a plain host (no user name, nothing a policy could not quote)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and HOST_AND_PORT.fullmatch(parts.netloc) is not None


def _policy_for(redirection: str) -> str | None:
    """The page's Content-Security-Policy letting its form lead to `redirection`: browsers apply
    form-action to the redirect that follows the submission, and the portal's is 'self'."""
    if not _web_url(redirection):
        return None
    parts = urlsplit(redirection)
    origin = f"{parts.scheme}://{parts.netloc}"
    return settings.CONTENT_SECURITY_POLICY.replace("form-action 'self'", f"form-action 'self' {origin}")


def _outcome(request, consumer_key: ConsumerKey, *, outcome: str, status: int = 200):
    response = render(
        request,
        "api/validation_done.html",
        {
            "consumer_key": consumer_key,
            "application": consumer_key.application,
            "outcome": outcome,
            "status_label": consumer_key.status_label_at(timezone.now()),
        },
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response


def _concerns(user, consumer_key: ConsumerKey) -> bool:
    """Whether a decided key is `user`'s business: they decided it, or it acts for their customer."""
    if consumer_key.validated_by_id is not None and consumer_key.validated_by_id == user.pk:
        return True
    return consumer_key.customer_id is not None and customers_of(user).filter(pk=consumer_key.customer_id).exists()


@login_required
@require_http_methods(["GET", "POST"])
def credential_validate(request, token: str):
    consumer_key = consumer_key_for_validation(token=token)
    if consumer_key is None:
        raise Http404("No such validation link")
    undecided = consumer_key.validated_by_id is None and consumer_key.customer_id is None
    if consumer_key.status != CredentialStatus.PENDING and not undecided:
        if not _concerns(request.user, consumer_key):
            raise Http404("No such validation link")
        return _outcome(request, consumer_key, outcome="used", status=HTTP_GONE)
    if consumer_key.status_at(timezone.now()) != CredentialStatus.PENDING or consumer_key.application.revoked_at:
        # Past its link's validity, or revoked (with its application) before anyone decided.
        return _outcome(request, consumer_key, outcome="expired", status=HTTP_GONE)
    form = ValidationForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            if form.cleaned_data["decision"] == "refuse":
                consumer_key_refuse(consumer_key=consumer_key, user=request.user)
                return _outcome(request, consumer_key, outcome="refused")
            consumer_key_validate(
                consumer_key=consumer_key,
                user=request.user,
                customer=form.cleaned_data["customer"],
                lifetime=form.lifetime_delta(),
            )
        except CredentialError:  # decided in another tab, or expired, meanwhile
            return _outcome(request, consumer_key, outcome="used", status=HTTP_GONE)
        if _web_url(consumer_key.redirection):
            return HttpResponseRedirect(consumer_key.redirection)
        return _outcome(request, consumer_key, outcome="validated")
    context = {"application": consumer_key.application, "rules": consumer_key.access_rules, "form": form}
    response = render(request, "api/validate.html", context, status=400 if form.errors else 200)
    response["Cache-Control"] = "no-store"
    policy = _policy_for(consumer_key.redirection)
    if policy:
        response["Content-Security-Policy"] = policy
    return response
