"""The project's /metrics: django-prometheus' exporter plus the apps' own collectors."""

from prometheus_client.core import REGISTRY

from mailqueue.metrics import MailQueueCollector


def register() -> None:
    if not getattr(register, "done", False):
        REGISTRY.register(MailQueueCollector())
        register.done = True


def metrics_view(request):
    """django-prometheus' exporter, for the monitoring addresses only (others: 404)."""
    from django.conf import settings
    from django.http import Http404
    from django_prometheus.exports import ExportToDjangoView

    if request.META.get("REMOTE_ADDR") not in settings.METRICS_ALLOWED_ADDRESSES:
        raise Http404("Not found")
    return ExportToDjangoView(request)
