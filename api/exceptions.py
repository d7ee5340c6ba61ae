"""Every API error is {"message": …} with the HTTP status of SPEC §7; authentication failures
add OVH's `errorCode` (SPEC §9.2, api.auth_errors)."""

import logging

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from api.auth_errors import OvhAuthError
from mailqueue.state import MailServiceError
from mailqueue.submission import SubmissionError
from mailqueue.webhook_addresses import WebhookUrlRefused

log = logging.getLogger(__name__)

# Seconds a client is asked to wait when the broker or the cache is unreachable.
UNAVAILABLE_RETRY_AFTER = 30


class Conflict(exceptions.APIException):
    """Not possible in the current state of the object (nothing changed)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not possible in the current state."
    default_code = "conflict"


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {_flatten(value)}" if key != "non_field_errors" else _flatten(value)
            for key, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def handler(exc, context):
    if isinstance(exc, BrokerUnavailable | RedisError):
        # What needs the broker or the cache and cannot fail open: a JSON 503, never an HTML 500.
        log.warning("API %s: broker or cache unavailable: %s: %s", context["request"].path, type(exc).__name__, exc)
        return Response(
            {"message": _("Service temporarily unavailable: try again in a few moments.")},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )
    if isinstance(exc, OvhAuthError):
        return Response({"errorCode": exc.error_code, "message": str(exc.detail)}, status=exc.status_code)
    if isinstance(exc, MailServiceError):
        code = status.HTTP_400_BAD_REQUEST if exc.code == "invalid" else status.HTTP_409_CONFLICT
        return Response({"message": str(exc.message)}, status=code)
    if isinstance(exc, SubmissionError):
        return Response({"message": str(exc.message), "smtpCode": exc.smtp_code}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, WebhookUrlRefused):  # the customer is told why the URL cannot receive webhooks
        return Response({"message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):  # too large a body, too many form fields: bad input
        return Response({"message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) else "Not found")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is not None:
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        response.data = {"message": _flatten(detail)}
    return response
