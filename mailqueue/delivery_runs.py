"""A delivery run (the `delivery_run` task, SPEC §4.2): batches one after another until the
queue is empty or the run's budget is spent, larger while the relay keeps up."""

import dataclasses
import time

from django.conf import settings

from mailqueue.delivery import delivery_run_batch

# A delivery run stops claiming new batches after this long, leaving room under the task's time limit.
DELIVERY_TASK_BUDGET_SECONDS = 60
# A full batch sent faster than this makes the next one larger (`batch_size_next`).
BATCH_GROWTH_SECONDS = 1.0


@dataclasses.dataclass
class RunResult:
    sent: int = 0
    batches: int = 0  # that claimed messages
    connections: int = 0  # to the relay


def delivery_run(*, budget_seconds: float = DELIVERY_TASK_BUDGET_SECONDS) -> RunResult:
    """Deliver due queued messages batch after batch until none is left or the budget is spent.
    Batches grow while the relay keeps up (`batch_size_next`)."""
    started = time.monotonic()
    run = RunResult()
    size = settings.DELIVERY_BATCH_SIZE
    while time.monotonic() - started < budget_seconds:
        batch_started = time.monotonic()
        result = delivery_run_batch(limit=size)
        if not result.claimed:
            break
        run.sent += result.sent
        run.batches += 1
        run.connections += result.connections
        size = batch_size_next(
            size, claimed=result.claimed, deferred=result.deferred, seconds=time.monotonic() - batch_started
        )
    return run


def batch_size_next(size: int, *, claimed: int, deferred: int, seconds: float) -> int:
    """The size of a run's next batch after one of `size` that claimed `claimed` messages, deferred
    `deferred` of them and took `seconds`: as many as the same pace sends in BATCH_GROWTH_SECONDS,
    between DELIVERY_BATCH_SIZE and DELIVERY_BATCH_SIZE_MAX.

    Each batch has costs of its own besides its messages' (its claim's statements, its reads, its
    relay connection: about 20 ms, bench/README.md): behind a fast relay larger batches spread
    them; behind a slow one batches stay at the first size, shared out among the workers and well
    within DELIVERY_BATCH_DEADLINE. A batch with deferrals (a relay down, busy or timing out) is
    no measure of the relay's pace: the next one is of the first size. A batch that found fewer
    than it asked for (the queue emptied) keeps the size."""
    least, most = settings.DELIVERY_BATCH_SIZE, max(settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_BATCH_SIZE_MAX)
    if deferred:
        return least
    if claimed < size:
        return size
    paced = int(claimed * BATCH_GROWTH_SECONDS / seconds) if seconds > 0 else most
    return max(least, min(most, paced))
