"""The delivery kick (SPEC §4.3): one delivery run per window however many commits, and however
many processes commit (a door's workers, the API): each process asks the cache once or twice a
window, not at every commit."""

import time

import pytest
from django.core.cache import cache
from django.db import transaction

from mailqueue import dispatch


@pytest.fixture
def kicks(monkeypatch):
    """The runs enqueued, and the cache calls made, while the test kicks."""
    enqueued, calls = [], []
    monkeypatch.setattr(dispatch, "task_send", lambda name, *args, countdown=None: enqueued.append((name, countdown)))
    for method in ("add", "get"):
        real = getattr(cache, method)
        monkeypatch.setattr(
            cache, method, lambda *args, real=real, method=method, **kw: calls.append(method) or real(*args, **kw)
        )
    cache.delete(dispatch.DELIVERY_KICK_KEY)
    dispatch._kicked_until = 0.0
    yield enqueued, calls
    cache.delete(dispatch.DELIVERY_KICK_KEY)
    dispatch._kicked_until = 0.0


def kick(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.delivery_kick()


@pytest.mark.django_db
def test_commits_in_one_window_enqueue_one_run_and_ask_the_cache_once(kicks, django_capture_on_commit_callbacks):
    enqueued, calls = kicks
    for _ in range(20):
        kick(django_capture_on_commit_callbacks)
    assert enqueued == [(dispatch.DELIVERY_RUN, dispatch.DELIVERY_KICK_WINDOW_SECONDS)]
    assert calls == ["add"]


@pytest.mark.django_db
def test_a_run_another_process_enqueued_is_read_once_and_trusted_until_it_is_due(
    kicks, django_capture_on_commit_callbacks
):
    enqueued, calls = kicks
    due = time.time() + 0.5
    cache.set(dispatch.DELIVERY_KICK_KEY, due, timeout=1)  # as another process's kick leaves it
    for _ in range(20):
        kick(django_capture_on_commit_callbacks)
    assert enqueued == []  # that run, due in half a second, finds this mail
    assert calls == ["add", "get"]
    assert dispatch._kicked_until <= time.monotonic() + 0.5
    while time.time() < due + 0.05:
        time.sleep(0.05)
    cache.delete(dispatch.DELIVERY_KICK_KEY)  # that run is gone: the next commit enqueues one
    kick(django_capture_on_commit_callbacks)
    assert enqueued == [(dispatch.DELIVERY_RUN, dispatch.DELIVERY_KICK_WINDOW_SECONDS)]


@pytest.mark.django_db(transaction=True)
def test_a_kick_in_a_transaction_is_decided_at_its_commit_not_before(kicks):
    """A run ahead when the transaction kicks may be gone by its commit: the kick waits for the
    commit to look (outside a transaction it returns at once, the mail committed already)."""
    enqueued, _calls = kicks
    dispatch._kicked_until = time.monotonic() + 0.2  # a run due in 0.2 s
    with transaction.atomic():
        dispatch.delivery_kick()
        time.sleep(0.3)  # a long transaction: that run has gone by the time it commits
        assert enqueued == []
    assert enqueued == [(dispatch.DELIVERY_RUN, dispatch.DELIVERY_KICK_WINDOW_SECONDS)]
