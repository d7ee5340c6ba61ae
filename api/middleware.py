"""Every answer under /1.0/ carries X-Ovh-Queryid, as OVH's do: one id per request, logged with it.

The official client shows it in its exceptions ("OVH-Query-ID: …"), so a customer quoting an
error gives the operators the log line of that very request. Placed near the top of the
middleware, it marks every answer: successes, errors, throttling, redirects, the NUL-byte 404.
"""

import logging
import secrets

from api.access_rules import API_PREFIX

log = logging.getLogger("api.requests")

QUERY_ID_PREFIX = "EU.ext-1."


def query_id_new() -> str:
    return QUERY_ID_PREFIX + secrets.token_hex(12)


class QueryIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            return self.get_response(request)
        query_id = request.ovh_query_id = query_id_new()
        response = self.get_response(request)
        response["X-Ovh-Queryid"] = query_id
        log.info(
            "%s %r %s %s",  # repr: a decoded %0A in the path cannot forge a log line
            request.method,
            path,
            response.status_code,
            query_id,
            extra={"query_id": query_id, "method": request.method, "path": path, "status": response.status_code},
        )
        return response
