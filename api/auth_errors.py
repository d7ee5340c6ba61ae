"""OVH's authentication errors: {"errorCode": …, "message": …}, with the status OVH gives each.

The official `ovh` client raises InvalidKey, InvalidCredential, NotGrantedCall and NotCredential
for a 403 carrying these codes. OVH answers a bad signature and a timestamp out of the window
with 400 (INVALID_SIGNATURE, QUERY_TIME_OUT), for which the client raises BadParametersError.
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status


class OvhAuthError(exceptions.APIException):
    error_code = ""


class InvalidKey(OvhAuthError):
    """Unknown or revoked application key."""

    status_code = status.HTTP_403_FORBIDDEN
    error_code = "INVALID_KEY"
    default_detail = _("Invalid application key")


class InvalidCredential(OvhAuthError):
    """Unknown, pending, refused, expired or revoked consumer key; unknown or revoked token."""

    status_code = status.HTTP_403_FORBIDDEN
    error_code = "INVALID_CREDENTIAL"
    default_detail = _("This credential is not valid")


class NotGrantedCall(OvhAuthError):
    """The credential's access rules do not allow this method and path."""

    status_code = status.HTTP_403_FORBIDDEN
    error_code = "NOT_GRANTED_CALL"
    default_detail = _("This call has not been granted")


class NotCredential(OvhAuthError):
    """A request with an application key but no consumer key, where one is needed."""

    status_code = status.HTTP_403_FORBIDDEN
    error_code = "NOT_CREDENTIAL"
    default_detail = _("This call needs a consumer key (X-Ovh-Consumer)")


class QueryTimeout(OvhAuthError):
    status_code = status.HTTP_400_BAD_REQUEST
    error_code = "QUERY_TIME_OUT"
    default_detail = _("Query out of time: check your clock against GET /auth/time")


class InvalidSignature(OvhAuthError):
    status_code = status.HTTP_400_BAD_REQUEST
    error_code = "INVALID_SIGNATURE"
    default_detail = _("Invalid signature")


ERROR_CODES = [error.error_code for error in OvhAuthError.__subclasses__()]
