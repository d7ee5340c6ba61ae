"""A delivery run (SPEC §4.2): batches one after another, larger while the relay keeps up."""

import pytest

from mailqueue import delivery_runs
from mailqueue.delivery_runs import batch_size_next, delivery_run
from mailqueue.models import Message, MessageStatus
from tests.factories import HostingFactory
from tests.mailqueue.test_claims import limit
from tests.mailqueue.test_delivery import queue_message, relay  # noqa: F401 (fixture)


@pytest.fixture
def sizes(settings):
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_BATCH_SIZE_MAX = 100, 500


def test_a_full_batch_sent_fast_makes_the_next_one_as_large_as_a_second_allows(sizes):
    assert batch_size_next(100, claimed=100, deferred=0, seconds=0.4) == 250
    assert batch_size_next(250, claimed=250, deferred=0, seconds=0.2) == 500  # never past DELIVERY_BATCH_SIZE_MAX
    assert batch_size_next(100, claimed=100, deferred=0, seconds=0) == 500


def test_a_slow_batch_brings_the_size_back_never_below_the_first(sizes):
    assert batch_size_next(500, claimed=500, deferred=0, seconds=2.0) == 250
    assert batch_size_next(500, claimed=500, deferred=0, seconds=30.0) == 100
    assert batch_size_next(100, claimed=100, deferred=0, seconds=10.0) == 100


def test_a_batch_with_deferrals_says_nothing_of_the_relays_pace_the_next_is_of_the_first_size(sizes):
    """A relay down defers a batch in milliseconds: that is no reason for a batch of 500."""
    assert batch_size_next(100, claimed=100, deferred=100, seconds=0.01) == 100
    assert batch_size_next(500, claimed=500, deferred=1, seconds=0.2) == 100


def test_a_batch_that_found_less_than_it_asked_for_keeps_the_size(sizes):
    assert batch_size_next(250, claimed=40, deferred=0, seconds=0.01) == 250


def test_a_maximum_below_the_first_size_is_the_first_size(settings):
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_BATCH_SIZE_MAX = 100, 10
    assert batch_size_next(100, claimed=100, deferred=0, seconds=0.01) == 100


@pytest.mark.django_db
@pytest.mark.parametrize(("growth_seconds", "batches"), [(3600, 4), (1e-9, 13)], ids=["fast relay", "slow relay"])
def test_a_run_delivers_every_message_once_in_batches_that_grow_with_the_relays_pace(
    relay,  # noqa: F811
    settings,
    monkeypatch,
    growth_seconds,
    batches,
):
    """The pace decides, not the clock of the test: a growth budget of an hour makes every batch
    after the first as large as allowed (20, 100, 100, 40), one of a nanosecond keeps them at the
    first size (13 of 20)."""
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_BATCH_SIZE_MAX = 20, 100
    monkeypatch.setattr(delivery_runs, "BATCH_GROWTH_SECONDS", growth_seconds)
    hosting = HostingFactory()
    limit(hosting, 1000)  # the plan's would hold most of them an hour
    messages = [queue_message(hosting, recipients=[f"r{number}@example.org"]) for number in range(260)]

    result = delivery_run()

    assert (result.sent, result.batches, result.connections) == (260, batches, batches)
    assert sorted(relay.received_ids()) == sorted(message.message_id for message in messages)
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 260
