"""The caller's webhook endpoints (SPEC §10.4) under `/1.0/me/webhooks`: OVH keeps what belongs to
the account rather than to one service under `/me`, and an endpoint is the customer's, for all its
hostings. The same services as the portal's page (`mailqueue.webhooks`); an endpoint of another
customer is a 404, as an unknown one."""

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework import serializers as drf_serializers
from rest_framework.response import Response

from api import webhook_serializers as shapes
from api.selectors import webhook_deliveries_recent, webhook_endpoints_visible_to
from api.serializers import ErrorSerializer
from api.views import AUTHENTICATED_ERRORS, ApiView, errors
from hosting.selectors import customers_of
from mailqueue.models import WebhookEndpoint
from mailqueue.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_secret_rotate,
    webhook_test_send,
)

NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="Unknown webhook endpoint, or another customer's")}


def endpoint_errors(*codes: int) -> dict:
    return {**errors(*codes, *AUTHENTICATED_ERRORS), **NOT_FOUND}


def endpoint_payload(endpoint: WebhookEndpoint, **extra) -> dict:
    return {**shapes.WebhookEndpointSerializer(endpoint).data, **extra}


class WebhookEndpointView(ApiView):
    """Base of the views of one endpoint: {id} looked up among the caller's customers' endpoints."""

    def endpoint(self, request, pk) -> WebhookEndpoint:
        endpoint = webhook_endpoints_visible_to(request.user).filter(pk=pk).first()
        if endpoint is None:
            raise Http404(f"The requested object (id = {pk}) does not exist")
        return endpoint


class WebhooksView(ApiView):
    @extend_schema(
        responses={
            200: drf_serializers.ListSerializer(child=drf_serializers.IntegerField()),
            **errors(*AUTHENTICATED_ERRORS),
        },
        summary="The ids of the caller's webhook endpoints, oldest first",
    )
    def get(self, request):
        endpoints = webhook_endpoints_visible_to(request.user).order_by("id").values_list("id", flat=True)
        return Response(list(endpoints))

    @extend_schema(
        request=shapes.WebhookEndpointCreateSerializer,
        responses={201: shapes.WebhookEndpointCreatedSerializer, **errors(*AUTHENTICATED_ERRORS)},
        summary="Create a webhook endpoint (active); its signing secret is in the answer, this once",
    )
    def post(self, request):
        payload = shapes.WebhookEndpointCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint, secret = webhook_endpoint_create(customer=self.customer(request), **payload.validated_data)
        return Response(endpoint_payload(endpoint, secret=secret), status=201)

    @staticmethod
    def customer(request):
        """The customer the endpoint is for: the credential's; a session must act for exactly one."""
        customers = list(customers_of(request.user)[:2])
        if len(customers) != 1:
            raise exceptions.ValidationError(
                _(
                    "This session is not for exactly one customer account: create the endpoint with API "
                    "credentials of that customer, or on the portal's Webhooks page."
                )
            )
        return customers[0]


class WebhookView(WebhookEndpointView):
    @extend_schema(
        responses={200: shapes.WebhookEndpointSerializer, **endpoint_errors()}, summary="One webhook endpoint"
    )
    def get(self, request, pk):
        return Response(endpoint_payload(self.endpoint(request, pk)))

    @extend_schema(
        request=shapes.WebhookEndpointUpdateSerializer,
        responses={204: OpenApiResponse(description="Changed"), **endpoint_errors()},
        summary="Change the URL, the events or whether it is active (the object read by GET is accepted)",
    )
    def put(self, request, pk):
        endpoint = self.endpoint(request, pk)
        payload = shapes.WebhookEndpointUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        webhook_endpoint_update(endpoint=endpoint, **payload.validated_data)
        return Response(status=204)

    @extend_schema(
        responses={204: OpenApiResponse(description="Deleted, with its deliveries"), **endpoint_errors()},
        summary="Delete a webhook endpoint",
    )
    def delete(self, request, pk):
        webhook_endpoint_delete(endpoint=self.endpoint(request, pk))
        return Response(status=204)


class WebhookSecretRotateView(WebhookEndpointView):
    @extend_schema(
        request=None,
        responses={200: shapes.WebhookSecretSerializer, **endpoint_errors()},
        summary="A new signing secret, at once (shown this once; the old one stops signing)",
    )
    def post(self, request, pk):
        return Response({"secret": webhook_secret_rotate(endpoint=self.endpoint(request, pk))})


class WebhookTestView(WebhookEndpointView):
    @extend_schema(
        request=None,
        responses={202: shapes.WebhookDeliverySerializer, **endpoint_errors()},
        summary="Send a `test` event now, once (its attempt is then in …/deliveries)",
    )
    def post(self, request, pk):
        delivery = webhook_test_send(endpoint=self.endpoint(request, pk))
        return Response(shapes.WebhookDeliverySerializer(delivery).data, status=202)


class WebhookDeliveriesView(WebhookEndpointView):
    @extend_schema(
        parameters=[shapes.WebhookDeliveryQuerySerializer],
        responses={200: shapes.WebhookDeliverySerializer(many=True), **endpoint_errors()},
        summary="The endpoint's newest deliveries, each with its attempts",
    )
    def get(self, request, pk):
        endpoint = self.endpoint(request, pk)
        query = shapes.WebhookDeliveryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        deliveries = webhook_deliveries_recent(endpoint=endpoint, limit=query.validated_data["limit"])
        return Response(shapes.WebhookDeliverySerializer(deliveries, many=True).data)
