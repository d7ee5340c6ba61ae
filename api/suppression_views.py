"""The hosting's suppression list in the API (SPEC §10.2): `GET …/email/suppressions`, and
`DELETE …/email/suppressions/{address}` through `suppressions_remove`, as the portal does."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from api import serializers
from api.views import AUTHENTICATED_ERRORS, HostingView, api_actor, errors
from mailqueue.selectors import suppressions_list
from mailqueue.suppression import address_key, suppressions_remove


class SuppressionsView(HostingView):
    """The entries in force: `search` keeps those whose address contains it; at most `limit`."""

    @extend_schema(
        parameters=[serializers.SuppressionQuerySerializer],
        responses={200: serializers.SuppressionSerializer(many=True), **errors(400, 404, *AUTHENTICATED_ERRORS)},
        summary="The addresses no longer sent to after a permanent error, newest first",
    )
    def get(self, request, service_name):
        hosting = self.hosting(request, service_name)
        query = serializers.SuppressionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = suppressions_list(hosting=hosting, search=query.validated_data["search"])
        return Response(serializers.SuppressionSerializer(rows[: query.validated_data["limit"]], many=True).data)


class SuppressionView(HostingView):
    """One entry removed (one Event names it); an address not listed is a 404."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "address", str, OpenApiParameter.PATH, description="The address as listed (@ and + written as they are)"
            )
        ],
        responses={
            204: OpenApiResponse(description="Removed: the next message to this address is sent"),
            **errors(404, *AUTHENTICATED_ERRORS),
        },
        summary="Take an address off the suppression list",
    )
    def delete(self, request, service_name, address):
        hosting = self.hosting(request, service_name)
        # Only what GET lists can be removed: an entry past its time (not yet swept) is not listed.
        listed = "\x00" not in address and (
            suppressions_list(hosting=hosting).filter(address=address_key(address)).exists()
        )
        if not listed or not suppressions_remove(hosting=hosting, addresses=[address], actor=api_actor(request)):
            raise Http404(f"The requested object (address = {address}) does not exist")
        return Response(status=204)
