"""The mail queue's Prometheus figures, read from the database at scrape time.

Worker processes come and go, so in-process counters would not add up; the daily counters
and the partial indexes of the queue give the same figures cheaply from any process.
"""

import time

from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from mailqueue.counters import COUNTER_FIELDS, submitted_today
from mailqueue.models import DailyCounter, MailService, Message, MessageStatus

# Scrapes within this many seconds reuse the previous figures.
CACHE_SECONDS = 10
# Statuses whose counts use a partial index; sent/failed are history, not queue depth.
QUEUE_STATUSES = [MessageStatus.QUEUED, MessageStatus.HELD, MessageStatus.DEFERRED, MessageStatus.SENDING]


class MailQueueCollector:
    def __init__(self, *, cache_errors: tuple = (), on_cache_error=None):
        """`cache_errors`: what a cache outage raises; `on_cache_error()` is told of each one."""
        self._cached_at = 0.0
        self._figures = None
        self._cache_errors = cache_errors
        self._on_cache_error = on_cache_error

    def _read(self) -> dict:
        if self._figures is None or time.monotonic() - self._cached_at > CACHE_SECONDS:
            today = DailyCounter.objects.filter(day=timezone.localdate()).aggregate(
                **{name: Sum(name) for name in COUNTER_FIELDS}
            )
            try:
                today["submitted"] = submitted_today()
            except self._cache_errors:  # the cache is down: the database's figures are still worth showing
                if self._on_cache_error:
                    self._on_cache_error()
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
