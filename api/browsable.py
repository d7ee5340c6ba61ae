"""The browsable API (DRF's HTML pages at /1.0/…), named as OVH names its resources.

A page is titled by its route (`/hosting/web/{serviceName}/email`), its breadcrumbs are the path's
resources (`API 1.0 / hosting/web / acme-shop.fr / email`) and an error page offers no request
forms: there is nothing to send to a resource that is not there or not the caller's.
"""

import re

from django.urls import Resolver404, resolve, reverse
from django.utils.encoding import escape_uri_path
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.views import APIView

from api.access_rules import API_PREFIX

# The request was for an existing resource and only its input or its state was refused: the form
# stays, to be corrected and sent again.
FORMS_KEPT_ON = {400, 409}
ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
OVH_PARAMETER_NAMES = {"pk": "id"}


def resource_name(route: str) -> str:
    """`1.0/hosting/web/<str:service_name>/email` → `/hosting/web/{serviceName}/email`."""
    path = "/" + route.removeprefix(API_PREFIX.strip("/")).strip("/")
    return ROUTE_PARAMETER.sub(lambda match: "{" + ovh_parameter_name(match.group(1)) + "}", path)


def ovh_parameter_name(name: str) -> str:
    first, *others = OVH_PARAMETER_NAMES.get(name, name).split("_")
    return first + "".join(word.capitalize() for word in others)


def is_resource_path(path: str) -> bool:
    try:
        return is_resource(resolve(path))
    except Resolver404:
        return False


def is_resource(match) -> bool:
    """An API view of its own, not the catch-all 404 of unknown paths."""
    view_class = getattr(match.func, "cls", None)
    return view_class is not None and issubclass(view_class, APIView) and match.url_name != "api-not-found"


class ResourceBrowsableAPIRenderer(BrowsableAPIRenderer):
    def get_name(self, view) -> str:
        match = view.request.resolver_match
        if match is None or not is_resource(match):
            return view.request.path.removeprefix(API_PREFIX) or "/"
        return resource_name(match.route)

    def get_breadcrumbs(self, request) -> list[tuple[str, str]]:
        """The API's home (its documentation), then each prefix of the path that is a resource,
        named by the segments it adds: `hosting/web`, `acme-shop.fr`, `email`."""
        crumbs = [("API 1.0", reverse("api-docs"))]
        if not request.path.startswith(API_PREFIX + "/"):
            return crumbs
        segments = request.path.removeprefix(API_PREFIX).strip("/").split("/")
        label = []
        for count, segment in enumerate(segments, start=1):
            label.append(segment)
            prefix = "/".join([API_PREFIX, *segments[:count]])
            if is_resource_path(prefix):
                crumbs.append(("/".join(label), escape_uri_path(prefix)))
                label = []
        return crumbs

    def get_context(self, data, accepted_media_type, renderer_context):
        context = super().get_context(data, accepted_media_type, renderer_context)
        status = renderer_context["response"].status_code
        if status >= 400 and status not in FORMS_KEPT_ON:
            context.update(
                options_form=None,
                delete_form=None,
                put_form=None,
                post_form=None,
                raw_data_post_form=None,
                raw_data_put_form=None,
                raw_data_patch_form=None,
                raw_data_put_or_patch_form=None,
                display_edit_forms=False,
                filter_form=None,
            )
        return context
