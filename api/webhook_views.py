"""The customer's « Webhooks » page (SPEC §10.4): the endpoints of the user's customers with their
state and last attempts; create one (its secret shown once), change its URL, events or whether it
is active, rotate its secret (shown once), delete it, send it a test event, and read each one's
attempt log. The services are those of the API (`mailqueue.webhooks`); another customer's
endpoint is a 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from api.forms import WebhookEndpointChangeForm, WebhookEndpointForm
from api.selectors import webhook_attempts_last, webhook_deliveries_recent, webhook_endpoints_visible_to
from mailqueue.models import WebhookEndpoint
from mailqueue.webhook_addresses import WebhookUrlRefused
from mailqueue.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_secret_rotate,
    webhook_test_send,
)

DELIVERIES_SHOWN = 50  # on an endpoint's page, newest first, each with all its attempts

CONFIRMATIONS = {
    "rotate": (
        _("Rotate the secret"),
        _("A new signing secret replaces the current one at once: the receiver must use the new one from now on."),
    ),
    "delete": (
        _("Delete the endpoint"),
        _("The endpoint, its pending events and its attempt log are deleted. This cannot be undone."),
    ),
}


def _no_store(response):
    response["Cache-Control"] = "no-store"  # a page may show a secret
    return response


def _endpoint(request, pk) -> WebhookEndpoint:
    return get_object_or_404(webhook_endpoints_visible_to(request.user), pk=pk)


def _list_page(request, *, form=None, created=None, secret=None, status=200):
    endpoints = list(webhook_endpoints_visible_to(request.user).order_by("customer__name", "created_at", "id"))
    attempts = webhook_attempts_last(endpoint_ids=[endpoint.pk for endpoint in endpoints])
    for endpoint in endpoints:
        endpoint.last_attempts = attempts.get(endpoint.pk, [])
    context = {
        "form": form or WebhookEndpointForm(user=request.user),
        "endpoints": endpoints,
        "created": created,
        "secret": secret,
    }
    return _no_store(render(request, "api/webhooks.html", context, status=status))


@login_required
@require_http_methods(["GET", "POST"])
def webhooks(request):
    """GET: the page. POST: a new endpoint, its secret shown once."""
    form = WebhookEndpointForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhook_endpoint_create(
                customer=form.cleaned_data["customer"], url=form.cleaned_data["url"], events=form.cleaned_data["events"]
            )
        except WebhookUrlRefused as refusal:
            form.add_error("url", str(refusal))
        else:
            return _list_page(request, created=endpoint, secret=secret)
    return _list_page(request, form=form, status=400 if form.errors else 200)


def _detail_page(request, endpoint, *, form=None, secret=None, status=200):
    initial = {"url": endpoint.url, "events": endpoint.events, "active": endpoint.active}
    context = {
        "endpoint": endpoint,
        "form": form or WebhookEndpointChangeForm(initial=initial),
        "deliveries": webhook_deliveries_recent(endpoint=endpoint, limit=DELIVERIES_SHOWN),
        "secret": secret,
        "confirmations": CONFIRMATIONS,
    }
    return _no_store(render(request, "api/webhook_detail.html", context, status=status))


@login_required
@require_http_methods(["GET", "POST"])
def webhook_detail(request, pk):
    """GET: the endpoint, its settings and its attempt log. POST: its URL, events and state changed."""
    endpoint = _endpoint(request, pk)
    if request.method == "GET":
        return _detail_page(request, endpoint)
    form = WebhookEndpointChangeForm(request.POST)
    if form.is_valid():
        try:
            webhook_endpoint_update(endpoint=endpoint, **form.cleaned_data)
        except WebhookUrlRefused as refusal:
            form.add_error("url", str(refusal))
        else:
            messages.success(request, _("The endpoint has been saved."))
            return redirect("webhook", pk=endpoint.pk)
    endpoint.refresh_from_db()  # the page shows what is stored, beside the refused form
    return _detail_page(request, endpoint, form=form, status=400)


def _confirm_page(request, endpoint, what: str):
    title, text = CONFIRMATIONS[what]
    context = {"endpoint": endpoint, "title": title, "text": text, "action": f"webhook-{what}"}
    return render(request, "api/webhook_confirm.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_rotate(request, pk):
    """GET: the confirmation (without JavaScript). POST: a new secret, shown once."""
    endpoint = _endpoint(request, pk)
    if request.method == "GET":
        return _confirm_page(request, endpoint, "rotate")
    secret = webhook_secret_rotate(endpoint=endpoint)
    return _detail_page(request, endpoint, secret=secret)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_delete(request, pk):
    endpoint = _endpoint(request, pk)
    if request.method == "GET":
        return _confirm_page(request, endpoint, "delete")
    webhook_endpoint_delete(endpoint=endpoint)
    messages.success(request, _("The endpoint has been deleted."))
    return redirect("webhooks")


@login_required
@require_POST
def webhook_test(request, pk):
    """A `test` event sent at once; its attempt appears in the log when it comes back."""
    endpoint = _endpoint(request, pk)
    webhook_test_send(endpoint=endpoint)
    messages.success(request, _("A test event is on its way: refresh this page in a few seconds to see its attempt."))
    return redirect("webhook", pk=endpoint.pk)
