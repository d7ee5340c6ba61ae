"""The one place that hands work to Celery: after commit, by task name.

Services never import `tasks` (which imports the services): they say what should happen next
here. Each enqueue is `robust`: the change it follows is committed, and a broker outage must
not turn it into an error; the periodic sweeps of SPEC §4.3 pick the work up instead.
"""

import logging
import time

from celery import current_app
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction

logger = logging.getLogger(__name__)

DELIVERY_RUN = "mailqueue.tasks.delivery_run"
PURGE_RUN = "mailqueue.tasks.purge_run"
AUTO_BLOCK_NOTIFY = "mailqueue.tasks.auto_block_notify"
ABUSE_NOTIFY = "mailqueue.tasks.abuse_notify"

# Submissions within this many seconds share one delivery run.
DELIVERY_KICK_WINDOW_SECONDS = 1
DELIVERY_KICK_KEY = "mailqueue:delivery-kick"


def task_send(name: str, *args, countdown: float | None = None) -> None:
    """Enqueue task `name` now (outside any transaction, or from a sweep)."""
    current_app.send_task(name, args=args, countdown=countdown)


def _on_commit(name: str, *args, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: task_send(name, *args, countdown=countdown), robust=True)


def delivery_kick() -> None:
    """After commit, one delivery run per window however many messages arrive in it.

    The first submission of a window enqueues a run for the end of the window (a short kick,
    not a long wait), the key holding when that run is due; the others find the key set and
    enqueue nothing, so a burst costs one broker message, not one per e-mail. A process knows a
    run is still ahead until it is due, whether it enqueued the run itself or read the key (a
    door's other workers, the API), and asks the cache nothing until then: one or two round
    trips a window, not one per commit.
    """
    if time.monotonic() < _kicked_until and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return  # committed already, a run ahead: what `kick` would find, without on_commit's work

    def kick():
        global _kicked_until
        now = time.monotonic()
        if now < _kicked_until:
            return  # a run due later will find the mail
        due = time.time() + DELIVERY_KICK_WINDOW_SECONDS
        if cache.add(DELIVERY_KICK_KEY, due, timeout=DELIVERY_KICK_WINDOW_SECONDS):
            task_send(DELIVERY_RUN, countdown=DELIVERY_KICK_WINDOW_SECONDS)
            _kicked_until = now + DELIVERY_KICK_WINDOW_SECONDS
            return
        other = cache.get(DELIVERY_KICK_KEY)  # when the run another process enqueued is due
        if isinstance(other, float):
            _kicked_until = now + min(max(other - time.time(), 0.0), DELIVERY_KICK_WINDOW_SECONDS)

    transaction.on_commit(kick, robust=True)


_kicked_until = 0.0  # time.monotonic() until which a delivery run is known to be ahead


def delivery_now() -> None:
    """After commit, a delivery run at once (released mail, recovered claims)."""
    _on_commit(DELIVERY_RUN)


def purge_run_now(*, hosting_id: int) -> None:
    """After commit, run the hosting's purge at once (a purge due now; the watchdog covers the rest)."""
    _on_commit(PURGE_RUN, hosting_id)


def auto_block_notify(*, event_id: int) -> None:
    """After commit, tell the customer's contact that the platform blocked sending (Event `event_id`)."""
    _on_commit(AUTO_BLOCK_NOTIFY, event_id)


def abuse_notify(*, event_id: int) -> None:
    """After commit, send the abuse notice of the spam block recorded by Event `event_id`."""
    _on_commit(ABUSE_NOTIFY, event_id)


WEBHOOKS_SEND = "mailqueue.tasks.webhooks_send_due"
WEBHOOKS_KICK_KEY = "mailqueue:webhooks-kick"


def webhooks_send() -> None:
    """After commit, one run of the webhook sender per window however many events arrive in it
    (the beat sweep sends what a lost kick left)."""

    def kick():
        if cache.add(WEBHOOKS_KICK_KEY, True, timeout=DELIVERY_KICK_WINDOW_SECONDS):
            task_send(WEBHOOKS_SEND, countdown=DELIVERY_KICK_WINDOW_SECONDS)

    transaction.on_commit(kick, robust=True)


SERVICE_NOTICE = "mailqueue.tasks.service_notice"
WEBHOOK_DISABLED_NOTIFY = "mailqueue.tasks.webhook_disabled_notify"


def service_notice(*, event_id: int) -> None:
    """After commit, tell the report recipient of the change recorded by Event `event_id`
    (a block or unblock the customer did not ask for, the end of a purge)."""
    _on_commit(SERVICE_NOTICE, event_id)


def webhook_disabled_notify(*, endpoint_id: int) -> None:
    """After commit, tell the customer that endpoint `endpoint_id` was disabled after a day of failures."""
    _on_commit(WEBHOOK_DISABLED_NOTIFY, endpoint_id)
