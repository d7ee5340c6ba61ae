"""The management commands of SPEC §8: seed_demo (idempotent) and provision_hosting."""

import datetime
import re
from collections import Counter
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from hosting.models import Customer, Hosting, Membership
from hosting.selectors import hosting_by_smtp_credentials
from mailqueue.models import DailyCounter, DeliveryError, ErrorKind, MailService, Message, Suppression
from tests.factories import CustomerFactory, HostingFactory

User = get_user_model()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def demo_data() -> dict[str, set]:
    return {
        "users": set(User.objects.values_list("username", "email", "is_staff", "is_superuser", "password")),
        "customers": set(Customer.objects.values_list("slug", "name", "contact_email", "language")),
        "hostings": set(Hosting.objects.values_list("service_name", "customer__slug", "plan", "smtp_password_hash")),
        "memberships": set(Membership.objects.values_list("user__username", "customer__slug")),
        "groups": set(Group.objects.values_list("name", "user__username")),
        "services": set(MailService.objects.values_list("hosting__service_name", "state", "block_reason")),
    }


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_creates_the_spec_data():
    output = seed()

    assert set(Customer.objects.values_list("slug", flat=True)) == {"acme", "globex"}
    assert set(Membership.objects.values_list("user__username", "customer__slug")) == {
        ("alice", "acme"),
        ("bob", "globex"),
    }
    assert set(Hosting.objects.values_list("service_name", "customer__slug", "plan")) == {
        ("acme-shop.fr", "acme", "perso"),
        ("acme-blog.fr", "acme", "starter"),
        ("globex.com", "globex", "pro"),
    }
    for username in ("alice", "bob", "olivia", "sam"):
        user = User.objects.get(username=username)
        assert user.check_password("demo-password"), username
        assert user.is_active
        assert not user.is_superuser
    assert set(User.objects.get(username="olivia").groups.values_list("name", flat=True)) == {"Operators"}
    assert set(User.objects.get(username="sam").groups.values_list("name", flat=True)) == {"Support"}
    assert User.objects.get(username="olivia").is_staff and User.objects.get(username="sam").is_staff
    assert not User.objects.get(username="alice").is_staff and not User.objects.get(username="bob").is_staff
    assert not User.objects.get(username="alice").groups.exists()
    # every hosting has its mail service, active, and some history to show
    for hosting in Hosting.objects.all():
        assert hosting.mail_service.state == "active"
        assert DailyCounter.objects.filter(hosting=hosting).count() == 30
        assert hosting_by_smtp_credentials(service_name=hosting.service_name, password="demo-password") == hosting
    assert DeliveryError.objects.exists()
    assert "alice" in output and "demo-password" in output


@pytest.mark.django_db
def test_seed_demo_shows_bounce_reports_and_suppressed_addresses_consistently():
    seed()

    reports = DeliveryError.objects.filter(kind=ErrorKind.DSN).select_related("hosting")
    assert {error.hosting.service_name for error in reports} == {"acme-shop.fr", "acme-blog.fr", "globex.com"}
    assert {(error.status, error.permanent) for error in reports} == {("5.1.1", True), ("4.2.2", False)}
    recent = timezone.now() - datetime.timedelta(days=4)
    for error in reports:
        assert error.created_at > recent
        assert error.reply.startswith(("550 5.1.1 <", "452 4.2.2 <")) and error.recipient in error.reply
        message = Message.objects.get(pk=error.message_id)
        [recipient] = message.recipients
        assert (message.status, recipient["address"], recipient["status"]) == ("failed", error.recipient, "failed")
        assert recipient["bounce"]["status"] == error.status and recipient["reply"] == error.reply
    # The counters count the errors of their day, as the page's chart and totals read them.
    for hosting in Hosting.objects.all():
        by_day = Counter(timezone.localdate(at) for at in hosting.delivery_errors.values_list("created_at", flat=True))
        assert dict(DailyCounter.objects.filter(hosting=hosting, errors__gt=0).values_list("day", "errors")) == by_day
    # The hard bounces are on the suppression lists, in force; the soft ones are not.
    suppressed = Suppression.objects.filter(expires_at__gt=timezone.now())
    assert Counter(suppressed.values_list("hosting__service_name", flat=True)) == {"acme-shop.fr": 3, "globex.com": 1}
    assert set(suppressed.values_list("address", flat=True)) == set(
        reports.filter(permanent=True).values_list("recipient", flat=True)
    )


@pytest.mark.django_db
def test_seed_demo_twice_changes_nothing():
    seed()
    counts, data = row_counts(), demo_data()

    seed()

    assert row_counts() == counts
    assert demo_data() == data


@pytest.mark.django_db
def test_seed_demo_keeps_existing_data_of_other_customers():
    other = HostingFactory()
    seed()
    seed()
    assert Hosting.objects.filter(pk=other.pk, customer=other.customer).exists()
    assert Customer.objects.count() == 3


# --- provision_hosting ------------------------------------------------------------------------


def provision(service_name: str, **options) -> tuple[str, str]:
    out = StringIO()
    call_command("provision_hosting", service_name, stdout=out, **options)
    match = re.fullmatch(r"smtp_user=(\S+)\nsmtp_password=(\S+)\n", out.getvalue())
    assert match, out.getvalue()
    return match.group(1), match.group(2)


@pytest.mark.django_db
def test_provision_hosting_prints_working_credentials_and_stores_only_a_hash():
    customer = CustomerFactory(slug="initech")

    user, password = provision("initech.example", customer="initech", plan="pro")

    assert user == "initech.example"
    hosting = Hosting.objects.get(service_name="initech.example")
    assert (hosting.customer, hosting.plan) == (customer, "pro")
    assert MailService.objects.get(hosting=hosting).state == "active"
    assert len(password) >= 20
    assert hosting_by_smtp_credentials(service_name=user, password=password) == hosting
    assert hosting_by_smtp_credentials(service_name=user, password=password + "x") is None
    assert hosting.smtp_password_hash
    assert password not in hosting.smtp_password_hash
    assert hosting.smtp_password_changed_at is not None


@pytest.mark.django_db
def test_provision_hosting_defaults_to_the_perso_plan():
    CustomerFactory(slug="initech")
    provision("initech.example", customer="initech")
    assert Hosting.objects.get(service_name="initech.example").plan == "perso"


@pytest.mark.django_db
def test_provision_hosting_again_rotates_the_password():
    customer = CustomerFactory(slug="initech")
    _user, first = provision("initech.example", customer="initech")

    user, second = provision("initech.example", customer="initech")

    assert second != first
    assert hosting_by_smtp_credentials(service_name=user, password=first) is None
    assert hosting_by_smtp_credentials(service_name=user, password=second) is not None
    assert Hosting.objects.filter(customer=customer).count() == 1
    assert MailService.objects.filter(hosting__service_name=user).count() == 1


@pytest.mark.django_db
def test_provision_hosting_for_an_unknown_customer_fails_and_creates_nothing():
    with pytest.raises(CommandError):
        provision("ghost.example", customer="nobody")
    assert not Hosting.objects.filter(service_name="ghost.example").exists()


@pytest.mark.django_db
def test_provision_hosting_of_another_customer_fails_and_keeps_the_password():
    hosting = HostingFactory(service_name="taken.example")
    CustomerFactory(slug="intruder")
    hash_before = hosting.smtp_password_hash

    with pytest.raises(CommandError):
        provision("taken.example", customer="intruder")

    hosting.refresh_from_db()
    assert hosting.smtp_password_hash == hash_before
    assert hosting_by_smtp_credentials(service_name="taken.example", password=hosting.smtp_password) == hosting
    assert Hosting.objects.get(service_name="taken.example").customer != Customer.objects.get(slug="intruder")


@pytest.mark.django_db
def test_provision_hosting_refuses_an_unknown_plan():
    CustomerFactory(slug="initech")
    with pytest.raises(CommandError):
        provision("initech.example", customer="initech", plan="platinum")
    assert not Hosting.objects.filter(service_name="initech.example").exists()


@pytest.mark.django_db
def test_smtp_passwords_never_start_with_a_dash_that_tools_read_as_an_option():
    from hosting.services import hosting_smtp_password_rotate
    from tests.factories import HostingFactory

    hosting = HostingFactory()
    passwords = [hosting_smtp_password_rotate(hosting=hosting) for _ in range(300)]
    assert not [password for password in passwords if password[0] in "-_"]
    assert len(set(passwords)) == 300 and all(len(password) == 32 for password in passwords)
