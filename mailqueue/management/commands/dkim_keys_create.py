"""Give every hosting without one its DKIM key (SPEC §11.2): hostings provisioned before keys
existed. Idempotent; prints its progress."""

from django.core.management.base import BaseCommand

from mailqueue.dkim_keys import dkim_keys_missing_create


class Command(BaseCommand):
    help = "Create the DKIM key of every hosting that has none (idempotent)."

    def handle(self, *args, **options):
        def progress(done: int, total: int) -> None:
            if done == total or done % 100 == 0:
                self.stdout.write(f"{done}/{total} hostings")

        created = dkim_keys_missing_create(progress=progress)
        self.stdout.write(f"dkim_keys_created={created}")
