"""The product's own Prometheus metrics, read from the database at scrape time.

Worker processes come and go, so in-process counters would not add up; the daily counters
and the partial indexes of the queue give the same figures cheaply from any process.
"""

import time

from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from mailqueue.counters import COUNTER_FIELDS, submitted_today
from mailqueue.models import DailyCounter, MailService, Message, MessageStatus
from portal.window_counters import CACHE_ERRORS, cache_unavailable

# Scrapes within this many seconds reuse the previous figures.
CACHE_SECONDS = 10
# Statuses whose counts use a partial index; sent/failed are history, not queue depth.
QUEUE_STATUSES = [MessageStatus.QUEUED, MessageStatus.HELD, MessageStatus.DEFERRED, MessageStatus.SENDING]


class MailQueueCollector:
    def __init__(self):
        self._cached_at = 0.0
        self._figures = None

    def _read(self) -> dict:
        if self._figures is None or time.monotonic() - self._cached_at > CACHE_SECONDS:
            today = DailyCounter.objects.filter(day=timezone.localdate()).aggregate(
                **{name: Sum(name) for name in COUNTER_FIELDS}
            )
            try:
                today["submitted"] = submitted_today()
            except CACHE_ERRORS:  # the cache is down: the database's figures are still worth showing
                cache_unavailable.labels(use="metrics").inc()
            self._figures = {
                "depth": {status: Message.objects.filter(status=status).count() for status in QUEUE_STATUSES},
                "today": {name: value or 0 for name, value in today.items()},
                "services": dict(MailService.objects.values_list("state").annotate(count=Count("pk"))),
            }
            self._cached_at = time.monotonic()
        return self._figures

    def describe(self):
        return []  # no collect() when registering: the first request must not pay for it

    def collect(self):
        try:
            figures = self._read()
        except Exception:  # the database is down: /healthz says so, metrics just go missing
            return
        depth = GaugeMetricFamily("portal_mail_queue_depth", "Messages waiting, per status", labels=["status"])
        for status, count in figures["depth"].items():
            depth.add_metric([str(status)], count)
        yield depth
        today = GaugeMetricFamily(
            "portal_mail_messages_today",
            "Messages today (local day) per event: submitted (accepted, counted in the cache), sent "
            "(delivered), errors (failed recipients), "
            "held, purged, expired",
            labels=["event"],
        )
        for name, value in figures["today"].items():
            today.add_metric([name], value)
        yield today
        services = GaugeMetricFamily("portal_mail_services", "Mail services per state", labels=["state"])
        for state, count in figures["services"].items():
            services.add_metric([state], count)
        yield services


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
