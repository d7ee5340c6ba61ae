"""GET /favicon.ico: browsers ask for it on every page of the portal, the admin and the browsable
API; answering it keeps a 404 and its log lines out of each page view."""

from django.http import HttpResponse
from django.views.decorators.http import require_safe

from portal.paths import BASE_DIR

FAVICON = (BASE_DIR / "static" / "favicon.ico").read_bytes()


@require_safe
def favicon(request) -> HttpResponse:
    return HttpResponse(FAVICON, content_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
