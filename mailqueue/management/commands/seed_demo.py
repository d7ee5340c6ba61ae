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
from mailqueue.counters import counter_add
from mailqueue.models import DailyCounter, DeliveryError, ErrorKind, Message, MessageStatus, RecipientStatus
from mailqueue.provisioning import mail_service_create
from mailqueue.suppression import suppressions_add

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
# Bounce reports received in the last days (SPEC §10.1): the hard ones put their address on the
# hosting's suppression list (§10.2), the soft one does not.
BOUNCED = {
    "acme-shop.fr": ["jean.dupont@webmail.example", "ancien.client@fai.example", "contact@societe-fermee.example"],
    "acme-blog.fr": [],
    "globex.com": ["j.smith@former-partner.example"],
}
SOFT_BOUNCED = {
    "acme-shop.fr": "boite.pleine@fai.example",
    "acme-blog.fr": "lecteur@boite-pleine.example",
    "globex.com": "full.mailbox@partner.example",
}
HARD_BOUNCE = ("5.1.1", "550 5.1.1 <{address}>: Recipient address rejected: User unknown")
SOFT_BOUNCE = ("4.2.2", "452 4.2.2 <{address}>: Mailbox full")


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
            if not DeliveryError.objects.filter(hosting=hosting, kind=ErrorKind.DSN).exists():
                self._bounces(hosting)
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
        for days_ago in range(HISTORY_DAYS, 0, -1):
            day = today - datetime.timedelta(days=days_ago)
            sent = rng.randint(5, 60)
            errors = rng.randint(0, 4)
            DailyCounter.objects.create(hosting=hosting, day=day, sent=sent, errors=errors)
            for index in range(errors):
                at = _local(day, minutes=rng.randint(0, 600))  # on the counter's day, between 08:00 and 18:00
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

    def _bounces(self, hosting):
        """Messages the relay took, then reported failed by the recipient's server (kind dsn): the
        recipient failed, the message too, an error counted on its day; hard ones suppressed."""
        rng = random.Random(f"bounces {hosting.service_name}")
        today = timezone.localdate()
        bounced = [(address, HARD_BOUNCE) for address in BOUNCED.get(hosting.service_name, [])]
        if hosting.service_name in SOFT_BOUNCED:
            bounced.append((SOFT_BOUNCED[hosting.service_name], SOFT_BOUNCE))
        errors = []
        for index, (address, (status, reply)) in enumerate(bounced):
            day = today - datetime.timedelta(days=1 + index % 3)
            sent_at = _local(day, minutes=60 + rng.randint(0, 480))
            bounced_at = sent_at + datetime.timedelta(minutes=rng.randint(1, 30))
            reply = reply.format(address=address)
            code = int(reply[:3])
            report = {"at": bounced_at.isoformat(), "status": status, "diagnostic": reply}
            recipient = {"address": address, "status": RecipientStatus.FAILED, "code": code, "reply": reply}
            message = Message.objects.create(
                hosting=hosting,
                message_id=f"<seed-bounce-{hosting.pk}-{index}@{hosting.service_name}>",
                sender=f"www-data@{hosting.service_name}",
                recipients=[{**recipient, "bounce": report}],
                recipient_count=1,
                subject=rng.choice(["Votre facture", "Newsletter de mars", "Réinitialisation du mot de passe"]),
                size=3072,
                status=MessageStatus.FAILED,
                created_at=sent_at,
                completed_at=bounced_at,
                attempts=1,
                last_reply=reply,
            )
            errors.append(
                DeliveryError.objects.create(
                    hosting=hosting,
                    message=message,
                    created_at=bounced_at,
                    recipient=address,
                    reply=reply,
                    subject=message.subject,
                    kind=ErrorKind.DSN,
                    permanent=status.startswith("5."),
                    status=status,
                )
            )
            # Sent when the relay took it, in error when the report came back (the same day here).
            counter_add(hosting_id=hosting.pk, day=day, sent=1, errors=1)
        suppressions_add(errors)


def _local(day: datetime.date, *, minutes: int) -> datetime.datetime:
    """`minutes` after 08:00 local time on `day`."""
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time(8)))
    return start + datetime.timedelta(minutes=minutes)
