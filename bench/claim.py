"""One delivery claim of a batch (`claims.delivery_claim`) as the queue grows, beside the least a
claim must do: one raw transaction locking the batch's oldest due rows (SELECT … ORDER BY
next_attempt_at, id LIMIT n FOR UPDATE SKIP LOCKED) and marking them sending, returning nothing (a
claim also counts the hourly limits and hands its rows back as messages, from the same UPDATE).
Their ratio should not grow with the backlog: a claim reads its batch off the queue's index, never
the whole queue.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/claim.py --queued 3000 30000

It works in a database of its own (`bench_claim`, made and dropped here), emptied between sizes;
each size gets one hosting with that many due messages (the message table analyzed, the others
as migrations leave them); every claim is timed, then its messages are put back in the queue, so
each of the --claims claims sees the same backlog. The median and the best of each are printed.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RAW_CLAIM = """
UPDATE mailqueue_message SET status = 'sending', claim_token = gen_random_uuid(), claimed_at = now()
WHERE id IN (SELECT id FROM mailqueue_message WHERE status = 'queued' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
"""


def timed(function, claims: int, put_back) -> list[float]:
    durations = []
    for _ in range(claims):
        started = time.perf_counter()
        function()
        durations.append(time.perf_counter() - started)
        put_back()
    return durations


def size_run(number: int, queued: int, args) -> dict:
    from django.db import connection, transaction

    from bench.delivery import PHASES, hosting_create, messages_create
    from hosting.models import Customer
    from mailqueue.claims import delivery_claim
    from mailqueue.models import Message, MessageStatus

    customer = Customer.objects.create(slug=f"claim{number}", name="Claim", contact_email="claim@example.org")
    hosting, _key = hosting_create(customer, PHASES[0])
    messages_create(hosting, queued, 100)

    def put_back():
        Message.objects.filter(status=MessageStatus.SENDING).update(status=MessageStatus.QUEUED, claim_token=None)

    def raw_claim():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(RAW_CLAIM, [args.batch])

    def claim():
        _token, taken = delivery_claim(limit=args.batch)
        assert len(taken) == args.batch, f"claimed {len(taken)} of {args.batch}"

    return {
        "queued": queued,
        "claim": timed(claim, args.claims, put_back),
        "raw": timed(raw_claim, args.claims, put_back),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, nargs="+", default=[3000, 30000], help="due messages, one run each")
    parser.add_argument("--batch", type=int, default=100, help="messages per claim (DELIVERY_BATCH_SIZE)")
    parser.add_argument("--claims", type=int, default=20, help="claims timed at each size")
    args = parser.parse_args()
    source_url = os.environ.get("DATABASE_URL", "")
    if not source_url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must name a PostgreSQL server: the plan of a claim is PostgreSQL's")
    from bench.delivery import django_on_own_database

    results = []
    with django_on_own_database(source_url, "bench_claim", prefix="bench-claim-var-"):
        from django.db import connection

        for number, queued in enumerate(args.queued):
            print(f"[{queued:,} due] {args.claims} claims of {args.batch}…", flush=True)
            results.append(size_run(number, queued, args))
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE mailqueue_message, mailqueue_relayhandoff")
    print(f"\n{'due':>9}  {'claim ms (median, best)':>24}  {'raw ms (median, best)':>22}  {'ratio of medians':>16}")
    for result in results:
        claim, raw = statistics.median(result["claim"]), statistics.median(result["raw"])
        print(
            f"{result['queued']:>9,}  {1000 * claim:>14.2f}, {1000 * min(result['claim']):>7.2f}"
            f"  {1000 * raw:>12.2f}, {1000 * min(result['raw']):>7.2f}  {claim / raw:>16.1f}"
        )
    print(f"claim: delivery_claim(limit={args.batch}); raw: one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
