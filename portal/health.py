"""GET /healthz: is the database reachable, is the broker reachable? 200 or 503, as JSON."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from portal.celery import app as celery_app

BROKER_TIMEOUT_SECONDS = 2


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        return f"error: {error.__class__.__name__}"
    return "ok"


def _broker() -> str:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as error:
        return f"error: {error.__class__.__name__}"
    return "ok"


@never_cache
def healthz(request):
    checks = {"database": _database(), "broker": _broker()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
