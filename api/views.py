"""The OVH-shaped API (SPEC §7): thin views over the portal's selectors and services.

A hosting is always looked up through the tenancy selector: another customer's service and an
unknown one get the same 404.
"""

import time

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework import serializers as drf_serializers
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers
from api.browsable import ResourceBrowsableAPIRenderer
from api.parsers import JSONParser
from api.throttling import AddressRateThrottle, CustomerRateThrottle
from hosting.models import Hosting
from hosting.selectors import hostings_visible_to
from mailqueue.actions import CUSTOMER_ACTIONS_BY_API_NAME
from mailqueue.models import BlockReason, Event, State
from mailqueue.report_recipient import mail_service_recipient_change
from mailqueue.selectors import daily_volumes, delivery_errors_recent, mail_service_summary
from mailqueue.state import Actor

OVH_STATE_BY_REASON = {BlockReason.BOUNCE: "bounce", BlockReason.SPAM: "spam"}


def ovh_state(service) -> str:
    """OVH's hosting.web.mail.StateEnum (SPEC §9.1)."""
    if service.state == State.ACTIVE:
        return "force" if service.forced else "ok"
    if service.state == State.PURGING:
        return "purging"
    return OVH_STATE_BY_REASON.get(service.block_reason, "ko")


def api_actor(request) -> Actor:
    user = request.user if getattr(request.user, "pk", None) else None
    return Actor.api(request.user.get_username(), user=user)


def errors(*codes: int) -> dict:
    """The error responses of an operation, all shaped {"message": …} (and `errorCode` for OVH's
    authentication failures)."""
    return {code: OpenApiResponse(serializers.ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


ERROR_DESCRIPTIONS = {
    400: "Bad input; on a signed request, errorCode INVALID_SIGNATURE (bad signature) or QUERY_TIME_OUT "
    "(timestamp outside the window)",
    401: "No credentials",
    403: "errorCode INVALID_KEY (unknown or revoked application key), INVALID_CREDENTIAL (unknown, pending, "
    "refused, expired or revoked consumer key; unknown or revoked token), NOT_CREDENTIAL (no consumer key), "
    "NOT_GRANTED_CALL (the credential's rules do not allow this call); or a session write without the CSRF token",
    404: "Unknown service, or another customer's",
    409: "Transition not allowed in the current state",
    429: "Too many requests or too many authentication failures",
}
AUTHENTICATED_ERRORS = (400, 401, 403, 429)


class ApiView(APIView):
    """Base of the API's views: throttled per customer (API callers) or per user (session)."""

    throttle_classes = [AddressRateThrottle, CustomerRateThrottle]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer, ResourceBrowsableAPIRenderer]


class HostingView(ApiView):
    """Base for the views of one hosting: resolves {serviceName} through the tenancy selector."""

    def hosting(self, request, service_name: str) -> Hosting:
        hosting = None
        if "\x00" not in service_name:  # PostgreSQL refuses NUL in a query parameter
            hosting = (
                hostings_visible_to(request.user).select_related("customer").filter(service_name=service_name).first()
            )
        if hosting is None:
            raise Http404(f"The requested object (serviceName = {service_name}) does not exist")
        return hosting


class AuthTimeView(ApiView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.INT, **errors(429)}, summary="Server time (Unix seconds)")
    def get(self, request):
        return Response(int(time.time()))


class HostingListView(ApiView):
    @extend_schema(
        responses={
            200: drf_serializers.ListSerializer(child=drf_serializers.CharField()),
            **errors(*AUTHENTICATED_ERRORS),
        },
        summary="The caller's service names",
    )
    def get(self, request):
        names = hostings_visible_to(request.user).order_by("service_name").values_list("service_name", flat=True)
        return Response(list(names))


class HostingDetailView(HostingView):
    @extend_schema(
        responses={200: serializers.HostingSerializer, **errors(404, *AUTHENTICATED_ERRORS)}, summary="One hosting"
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        return Response(
            {
                "serviceName": hosting.service_name,
                "displayName": hosting.service_name,
                "offer": hosting.plan,
                "state": "active",
                "primaryLogin": hosting.service_name,
            }
        )


class EmailView(HostingView):
    @extend_schema(
        responses={200: serializers.EmailSerializer, **errors(404, *AUTHENTICATED_ERRORS)},
        summary="The hosting's outgoing mail service",
    )
    def get(self, request, service_name):
        return Response(self.email(self.hosting(request, service_name)))

    @staticmethod
    def email(hosting) -> dict:
        summary = mail_service_summary(hosting=hosting)
        service = summary.service
        return {
            "bounce": summary.error_total,
            # What is configured, as OVH: null when reports go to the customer's contact (SPEC §9.2).
            "email": service.report_recipient or None,
            "maxPerDay": summary.hourly_limit * 24,
            "sent": summary.sent_total,
            "sentToday": summary.sent_today,
            "state": ovh_state(service),
        }

    @extend_schema(
        request=serializers.EmailUpdateSerializer,
        responses={204: OpenApiResponse(description="Recipient changed"), **errors(400, 404, *AUTHENTICATED_ERRORS)},
        summary="Change the error-report recipient (the only writable field; the object read by GET is accepted)",
    )
    def put(self, request, service_name):
        hosting = self.hosting(request, service_name)
        payload = serializers.EmailUpdateSerializer(data=request.data, current=self.email(hosting))
        payload.is_valid(raise_exception=True)
        mail_service_recipient_change(hosting=hosting, actor=api_actor(request), email=payload.validated_data["email"])
        return Response(status=204)


class EmailRequestView(HostingView):
    @extend_schema(
        request=serializers.EmailRequestSerializer,
        responses={200: OpenApiTypes.STR, **errors(400, 404, 409, *AUTHENTICATED_ERRORS)},
        summary="Block, unblock, purge or cancel a purge",
    )
    def post(self, request, service_name):
        hosting = self.hosting(request, service_name)
        payload = serializers.EmailRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        action = CUSTOMER_ACTIONS_BY_API_NAME[payload.validated_data["action"]]
        action.call(hosting=hosting, actor=api_actor(request))
        return Response(action.outcome())


class BouncesView(HostingView):
    @extend_schema(
        parameters=[serializers.BounceQuerySerializer],
        responses={200: serializers.BounceSerializer(many=True), **errors(400, 404, *AUTHENTICATED_ERRORS)},
        summary="The newest delivery errors",
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        query = serializers.BounceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        errors_recent = delivery_errors_recent(hosting=hosting, limit=query.validated_data.get("limit", 20))
        return Response(serializers.BounceSerializer(errors_recent, many=True).data)


class VolumesView(HostingView):
    @extend_schema(
        responses={200: serializers.VolumeSerializer(many=True), **errors(404, *AUTHENTICATED_ERRORS)},
        summary="Messages sent per day, last 30 days",
    )
    def get(self, request, service_name):
        volumes = daily_volumes(hosting=self.hosting(request, service_name))
        return Response(serializers.VolumeSerializer(volumes, many=True).data)


class NotFoundView(ApiView):
    """Anything else under /1.0/: the same 404 for every method, OPTIONS included. (A class, as
    @api_view would list OPTIONS twice in Allow: its "OPTIONS" and the "options" it adds.)"""

    authentication_classes = []
    permission_classes = [AllowAny]
    schema = None

    def get(self, request, *args, **kwargs):
        raise exceptions.NotFound("No such API endpoint.")

    post = put = patch = delete = options = get


not_found = NotFoundView.as_view()


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500

    def decode_cursor(self, request):
        # DRF answers a bad cursor with 404 and a forged position with a server error: 400 for both.
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            cursor = None
            valid = False
        else:
            valid = cursor is None or cursor.position is None or cursor.position.isdigit()
        if not valid:
            raise exceptions.ValidationError({"cursor": self.invalid_cursor_message})
        return cursor


PAGING_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Opaque paging cursor (from `next` or `previous`)"),
    OpenApiParameter("pageSize", int, description="1–500, default 50"),
]


class EventsView(HostingView):
    pagination_class = NewestFirst

    @extend_schema(
        parameters=PAGING_PARAMETERS,
        responses={200: serializers.EventSerializer(many=True), **errors(400, 404, *AUTHENTICATED_ERRORS)},
        summary="The audit log of the mail service, newest first",
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(Event.objects.filter(hosting=hosting), request, view=self)
        return paginator.get_paginated_response(serializers.EventSerializer(page, many=True).data)
