"""A hosting's messages in the API (SPEC §7, §10.3): submit one; read the delivery log with the
filters of the portal's « Suivi des envois » on keyset pages; delete a held or queued message or
retry a deferred one now (through `message_actions`, as the portal); the streamed CSV of the log
and of the delivery errors."""

import ipaddress

from django.http import Http404, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, renderers
from rest_framework import serializers as drf_serializers
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from api import serializers
from api.exceptions import Conflict
from api.throttling import client_address
from api.views import AUTHENTICATED_ERRORS, PAGING_PARAMETERS, HostingView, NewestFirst, api_actor, errors
from mailqueue.message_actions import DELETABLE, messages_delete, messages_retry
from mailqueue.message_log import (
    csv_filename,
    cursor_decode,
    cursor_encode,
    errors_csv,
    messages_csv,
    messages_log,
    messages_page,
    messages_page_before,
)
from mailqueue.models import Door, Message, MessageStatus
from mailqueue.submission import message_accept

# An API cursor is the log's own (the page after that message) or BEFORE + one (the page before
# it: `previous`). The log's cursors are URL-safe base64, which never holds a ".".
BEFORE = "b."

LOG_FILTERS = [
    OpenApiParameter(
        "status",
        str,
        enum=MessageStatus.values,
        many=True,
        explode=True,
        description="One status or several: repeat it",
    ),
    OpenApiParameter("recipient", {"type": "string", "maxLength": 320}, description="Part of a recipient's address"),
    OpenApiParameter("sender", {"type": "string", "maxLength": 320}, description="Part of the envelope sender"),
    OpenApiParameter("subject", {"type": "string", "maxLength": 255}, description="Part of the subject"),
    OpenApiParameter("since", OpenApiTypes.DATE, description="Received on this day (local time) or later"),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Received on this day (local time) or earlier"),
]


def _not_found(pk) -> Http404:
    return Http404(f"The requested object (id = {pk}) does not exist")


def messages_filtered(hosting, params):
    """The hosting's messages that the log's filters in `params` keep; 400 for a bad value."""
    log = messages_log(hosting=hosting, data=params)
    if log.errors:
        raise exceptions.ValidationError({name: " ".join(problems) for name, problems in log.errors.items()})
    return log.qs


def _link(request, cursor: str | None) -> str | None:
    return replace_query_param(request.build_absolute_uri(), "cursor", cursor) if cursor else None


def log_page(request, queryset) -> Response:
    """{next, previous, results}: keyset pages newest first, as DRF's cursor pages were shaped."""
    size = NewestFirst().get_page_size(request)
    cursor = request.query_params.get("cursor") or None
    backwards = cursor is not None and cursor.startswith(BEFORE)
    position = cursor.removeprefix(BEFORE) if backwards else cursor
    if position is not None and cursor_decode(position) is None:
        raise exceptions.ValidationError({"cursor": NewestFirst.invalid_cursor_message})
    if backwards:
        rows, newer = messages_page_before(queryset=queryset, cursor=position, size=size)
        next_cursor, previous = (cursor_encode(rows[-1]) if rows else None), (newer and BEFORE + newer)
    else:
        rows, next_cursor = messages_page(queryset=queryset, cursor=position, size=size)
        previous = BEFORE + cursor_encode(rows[0]) if position and rows else None
    return Response(
        {
            "next": _link(request, next_cursor),
            "previous": _link(request, previous),
            "results": serializers.MessageSerializer(rows, many=True).data,
        }
    )


class MessagesView(HostingView):
    pagination_class = NewestFirst  # so that the schema describes the paginated envelope

    @extend_schema(
        parameters=[*LOG_FILTERS, *PAGING_PARAMETERS],
        responses={200: serializers.MessageSerializer(many=True), **errors(400, 404, *AUTHENTICATED_ERRORS)},
        summary="Messages' metadata, newest first (never their content), filtered as the delivery log",
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        return log_page(request, messages_filtered(hosting, request.query_params))

    @extend_schema(
        request=serializers.MessageSubmitSerializer,
        responses={
            201: inline_serializer(
                "AcceptedMessage",
                {
                    "id": drf_serializers.IntegerField(),
                    "messageId": drf_serializers.CharField(),
                    "status": drf_serializers.ChoiceField(choices=["queued", "held"]),
                },
            ),
            **errors(400, 404, *AUTHENTICATED_ERRORS),
        },
        summary="Submit a message (queued, or held when sending is blocked)",
    )
    def post(self, request, service_name):
        hosting = self.hosting(request, service_name)
        payload = serializers.MessageSubmitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            raw = data["message"].encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") in the JSON string
            raise exceptions.ValidationError({"message": "Not valid Unicode text."}) from None
        message = message_accept(
            hosting=hosting,
            sender=data["sender"],
            recipients=data["recipients"],
            raw=raw,
            door=Door.API,
            client_address=_ip_or_none(client_address(request)),
        )
        return Response({"id": message.pk, "messageId": message.message_id, "status": message.status}, status=201)


class MessageActionView(HostingView):
    """The hosting's message `pk` (its status only); another hosting's is a 404, as an unknown one."""

    @staticmethod
    def status_of(hosting, pk) -> str:
        status = Message.objects.filter(hosting=hosting, pk=pk).values_list("status", flat=True).first()
        if status is None:
            raise _not_found(pk)
        return status


class MessageView(MessageActionView):
    @extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted"),
            **errors(404, 409, *AUTHENTICATED_ERRORS),
        },
        summary="Delete a held or queued message (409 in any other status)",
    )
    def delete(self, request, service_name, pk):
        hosting = self.hosting(request, service_name)
        status = self.status_of(hosting, pk)
        # Re-checked under the hosting's lock by the service: a message taken for delivery meanwhile stays.
        if status not in DELETABLE or not messages_delete(hosting=hosting, message_ids=[pk], actor=api_actor(request)):
            status = self.status_of(hosting, pk)
            raise Conflict(
                _("Only a held or queued e-mail can be deleted; this one is %(status)s.") % {"status": status}
            )
        return Response(status=204)


class MessageRetryView(MessageActionView):
    @extend_schema(
        request=None,
        responses={200: serializers.MessageSerializer, **errors(404, 409, *AUTHENTICATED_ERRORS)},
        summary="Retry a deferred message now (409 in any other status, or while sending is not active)",
    )
    def post(self, request, service_name, pk):
        hosting = self.hosting(request, service_name)
        status = self.status_of(hosting, pk)
        if status != MessageStatus.DEFERRED or not messages_retry(
            hosting=hosting, message_ids=[pk], actor=api_actor(request)
        ):
            status = self.status_of(hosting, pk)
            raise Conflict(_("Only a deferred e-mail can be retried; this one is %(status)s.") % {"status": status})
        message = Message.objects.defer("raw").get(hosting=hosting, pk=pk)
        return Response(serializers.MessageSerializer(message).data)


class CsvRenderer(renderers.BaseRenderer):
    """Lets a client ask for text/csv (Accept); the CSV itself streams past the renderers."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Never reached: the views stream their CSV, and CsvExportView answers errors in JSON.
        return renderers.JSONRenderer().render(data)


def csv_errors(*codes: int) -> dict:
    return {(code, "application/json"): response for code, response in errors(*codes).items()}


CSV_DESCRIPTION = "UTF-8 CSV with a byte-order mark, one line per recipient, newest first; streamed"


class CsvExportView(HostingView):
    renderer_classes = [renderers.JSONRenderer, CsvRenderer]

    def handle_exception(self, exc):
        # An error is {"message": …} in JSON, whatever the client accepts.
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    @staticmethod
    def streamed(lines, filename: str) -> StreamingHttpResponse:
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["Cache-Control"] = "no-store"
        return response


class MessagesExportView(CsvExportView):
    @extend_schema(
        parameters=LOG_FILTERS,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=CSV_DESCRIPTION),
            **csv_errors(400, 404, *AUTHENTICATED_ERRORS),
        },
        summary="The delivery log as CSV (the filters of GET …/email/messages)",
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        queryset = messages_filtered(hosting, request.query_params)
        return self.streamed(messages_csv(queryset), csv_filename(hosting, "messages"))


class BouncesExportView(CsvExportView):
    @extend_schema(
        parameters=[serializers.DayRangeQuerySerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="UTF-8 CSV with a byte-order mark, one line per error, newest first"
            ),
            **csv_errors(400, 404, *AUTHENTICATED_ERRORS),
        },
        summary="The delivery errors of a date range as CSV",
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        given = {name: value for name, value in request.query_params.items() if value}  # "since=": no bound
        query = serializers.DayRangeQuerySerializer(data=given)
        query.is_valid(raise_exception=True)
        lines = errors_csv(hosting=hosting, **query.validated_data)
        return self.streamed(lines, csv_filename(hosting, "errors"))


def _ip_or_none(address: str) -> str | None:
    """The client's address for the Received: header, when it is one (a proxy may send anything)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
