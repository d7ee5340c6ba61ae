"""Demo data for development (SPEC §8). Idempotent: a second run changes nothing."""

import datetime
import random

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from hosting.models import Customer, Hosting, Language, Plan
from hosting.services import membership_add
from mailqueue.models import DailyCounter, DeliveryError, Message, MessageStatus, RecipientStatus
from mailqueue.provisioning import mail_service_create

PASSWORD = "demo-password"  # noqa: S105 (development data, printed on purpose)
CUSTOMERS = [
    ("acme", "ACME SARL", "contact@acme.example", Language.FR),
    ("globex", "Globex Corporation", "it@globex.example", Language.EN),
]
HOSTINGS = [
    ("acme-shop.fr", "acme", Plan.PERSO),
    ("acme-blog.fr", "acme", Plan.STARTER),
    ("globex.com", "globex", Plan.PRO),
]
MEMBERS = [("alice", "acme"), ("bob", "globex")]
STAFF = [("olivia", "Operators"), ("sam", "Support")]
HISTORY_DAYS = 30


class Command(BaseCommand):
    help = "Create the demo customers, users and hostings with 30 days of history (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        from hosting.services import _smtp_password_digest

        User = get_user_model()
        customers = {}
        for slug, name, contact, language in CUSTOMERS:
            customers[slug], _ = Customer.objects.update_or_create(
                slug=slug, defaults={"name": name, "contact_email": contact, "language": language}
            )
        for username, slug in MEMBERS:
            user = self._user(User, username, email=f"{username}@{slug}.example")
            membership_add(customer=customers[slug], user=user)
        for username, group_name in STAFF:
            user = self._user(User, username, email=f"{username}@portal.example", is_staff=True)
            group, _ = Group.objects.get_or_create(name=group_name)
            user.groups.add(group)
        for service_name, slug, plan in HOSTINGS:
            hosting, _created = Hosting.objects.update_or_create(
                service_name=service_name, defaults={"customer": customers[slug], "plan": plan}
            )
            # A fixed SMTP password so the demo can be driven with swaks or sendmail.
            hosting.smtp_password_hash = _smtp_password_digest(PASSWORD)
            hosting.save(update_fields=["smtp_password_hash"])
            mail_service_create(hosting=hosting)
            if not DailyCounter.objects.filter(hosting=hosting).exists():
                self._history(hosting)
        self.stdout.write("Demo data ready. Logins (password: demo-password):")
        self.stdout.write("  alice (customer acme: acme-shop.fr, acme-blog.fr)")
        self.stdout.write("  bob (customer globex: globex.com)")
        self.stdout.write("  olivia (operator, /admin/), sam (support, read-only /admin/)")
        self.stdout.write("  SMTP: user = service name, password = demo-password, on 127.0.0.1:2525")

    def _user(self, User, username, *, email, is_staff=False):
        user, created = User.objects.get_or_create(username=username, defaults={"email": email, "is_staff": is_staff})
        if created:
            user.set_password(PASSWORD)
            user.save()
        return user

    def _history(self, hosting):
        """Thirty days of counters, a few delivered messages and delivery errors."""
        rng = random.Random(hosting.service_name)
        today = timezone.localdate()
        now = timezone.now()
        for days_ago in range(HISTORY_DAYS, 0, -1):
            day = today - datetime.timedelta(days=days_ago)
            sent = rng.randint(5, 60)
            errors = rng.randint(0, 4)
            DailyCounter.objects.create(hosting=hosting, day=day, sent=sent, errors=errors)
            for index in range(errors):
                at = now - datetime.timedelta(days=days_ago, minutes=rng.randint(0, 600))
                address = f"user{rng.randint(1, 999)}@unknown-domain.example"
                message = Message.objects.create(
                    hosting=hosting,
                    message_id=f"<seed-{hosting.pk}-{days_ago}-{index}@{hosting.service_name}>",
                    sender=f"www-data@{hosting.service_name}",
                    recipients=[
                        {
                            "address": address,
                            "status": RecipientStatus.FAILED,
                            "code": 550,
                            "reply": "5.1.1 User unknown",
                        }
                    ],
                    recipient_count=1,
                    subject=rng.choice(["Votre commande", "Confirmation d'inscription", "Nouveau commentaire"]),
                    size=2048,
                    status=MessageStatus.FAILED,
                    created_at=at,
                    completed_at=at,
                    attempts=1,
                    last_reply="550 5.1.1 User unknown",
                )
                DeliveryError.objects.create(
                    hosting=hosting,
                    message=message,
                    created_at=at,
                    recipient=address,
                    reply="550 5.1.1 User unknown",
                    subject=message.subject,
                )
