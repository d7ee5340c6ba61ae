"""OVH's /auth credential endpoints (SPEC §9.3): an application asks for a consumer key; a caller
reads or revokes its own credential, whatever its access rules allow, as on OVH."""

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from api import serializers
from api.auth_errors import NotCredential
from api.authentication import application_authenticate
from api.models import ApiToken, ConsumerKey, CredentialStatus
from api.parsers import JSONParser
from api.services import api_token_revoke, consumer_key_request, consumer_key_revoke
from api.throttling import CredentialRequestRateThrottle
from api.views import AUTHENTICATED_ERRORS, ApiView, errors

APPLICATION_HEADER = OpenApiParameter(
    "X-Ovh-Application",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="The application key; the request is not signed (there is no consumer key yet)",
)


class CredentialRequestView(ApiView):
    """What the official client's request_consumerkey() sends: the application key alone (no
    signature, no consumer key yet), the access rules and where to send the browser afterwards.
    The consumer key answered grants nothing until a user validates it at `validationUrl`."""

    # The application key alone identifies the caller: throttled per client address.
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [CredentialRequestRateThrottle]
    parser_classes = [JSONParser]

    @extend_schema(
        request=serializers.CredentialRequestSerializer,
        responses={200: serializers.CredentialRequestedSerializer, **errors(400, 403, 429)},
        parameters=[APPLICATION_HEADER],
        auth=[],
        summary="Ask for a consumer key with access rules; a user validates it at validationUrl",
    )
    def post(self, request):
        application = application_authenticate(request)
        payload = serializers.CredentialRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        requested = consumer_key_request(
            application=application,
            access_rules=payload.validated_data["accessRules"],
            redirection=payload.validated_data.get("redirection") or "",
        )
        validation_url = request.build_absolute_uri(
            reverse("api-credential-validate", args=[requested.validation_token])
        )
        return Response(
            {"consumerKey": requested.consumer_key, "validationUrl": validation_url, "state": CredentialStatus.PENDING}
        )


def _credential_of(request) -> ConsumerKey | ApiToken:
    credential = request.auth
    if not isinstance(credential, ConsumerKey | ApiToken):  # the portal session has no credential
        raise NotCredential()
    return credential


def credential_describe(credential: ConsumerKey | ApiToken) -> dict:
    """OVH's api.Credential of a consumer key, or of a token (validated, no expiry)."""
    is_key = isinstance(credential, ConsumerKey)
    return serializers.CredentialSerializer(
        {
            "credentialId": credential.pk,
            "applicationId": credential.application_id,
            "rules": credential.access_rules,
            "status": credential.status_at(timezone.now()) if is_key else CredentialStatus.VALIDATED,
            "creation": credential.created_at,
            "expiration": credential.expires_at if is_key else None,
            "lastUse": credential.last_used_at,
            "ovhSupport": False,
            "allowedIPs": None,
        }
    ).data


class CurrentCredentialView(ApiView):
    """OVH's api.Credential of the consumer key (or token) that signs this request; allowed to any
    valid credential, whatever its access rules."""

    permission_classes = [IsAuthenticated]  # any valid credential, whatever its rules

    @extend_schema(
        responses={200: serializers.CredentialSerializer, **errors(*AUTHENTICATED_ERRORS)},
        summary="The credential of this request: its rules, status, expiry and last use",
    )
    def get(self, request):
        return Response(credential_describe(_credential_of(request)))


class LogoutView(ApiView):
    """Revokes the consumer key (or token) of this request: the next request with it is refused
    (INVALID_CREDENTIAL). Allowed to any valid credential, whatever its access rules."""

    permission_classes = [IsAuthenticated]  # any valid credential, whatever its rules

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="The credential is revoked"), **errors(*AUTHENTICATED_ERRORS)},
        summary="Revoke the credential of this request",
    )
    def post(self, request):
        credential = _credential_of(request)
        if isinstance(credential, ConsumerKey):
            consumer_key_revoke(consumer_key=credential)
        else:
            api_token_revoke(token=credential)
        return Response(status=204)
