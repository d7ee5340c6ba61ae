"""The project's /metrics: django-prometheus' exporter plus the apps' own collectors."""

from prometheus_client.core import REGISTRY

from api.throttling import client_address
from api.window_counters import CACHE_ERRORS, cache_unavailable
from mailqueue.metrics import MailQueueCollector


def register() -> None:
    if not getattr(register, "done", False):
        REGISTRY.register(
            MailQueueCollector(
                cache_errors=CACHE_ERRORS, on_cache_error=lambda: cache_unavailable.labels(use="metrics").inc()
            )
        )
        register.done = True


def metrics_view(request):
    """django-prometheus' exporter, for the monitoring addresses only (others: 404)."""
    from django.conf import settings
    from django.http import Http404
    from django_prometheus.exports import ExportToDjangoView

    # Behind PROXY_COUNT proxies, REMOTE_ADDR is the proxy's (127.0.0.1): the client's address counts.
    if client_address(request) not in settings.METRICS_ALLOWED_ADDRESSES:
        raise Http404("Not found")
    return ExportToDjangoView(request)
