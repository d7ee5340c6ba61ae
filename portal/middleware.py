from django.conf import settings
from django.http import Http404, JsonResponse


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header (Django 5.2 has none built in)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class NulInUrlNotFoundMiddleware:
    """A NUL byte anywhere in the URL (path or query string) is a 404.

    No name, filter or search term of the product contains one, and PostgreSQL refuses it in
    any text parameter ("text fields cannot contain NUL"): without this, every view that looks
    the value up would answer 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            if request.path.startswith("/1.0/"):  # the API's errors are all {"message": …}
                return JsonResponse({"message": "Not found: the URL contains a NUL byte."}, status=404)
            raise Http404("NUL in the URL")
        return self.get_response(request)
