"""factory_boy factories for every model; tests build their data with these."""

import datetime

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from hosting.encryption import encrypt
from hosting.models import Customer, Hosting, Membership, Plan
from hosting.services import hosting_smtp_password_rotate
from mailqueue.models import (
    DailyCounter,
    DeliveryError,
    Event,
    MailService,
    Message,
    MessageStatus,
    RecipientStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from reports.models import ErrorDigest

TEST_PASSWORD = "a-long-test-password-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    slug = factory.Sequence(lambda n: f"customer-{n}")
    name = factory.Faker("company")
    contact_email = factory.Faker("email")
    language = "fr"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    customer = factory.SubFactory(CustomerFactory)


class HostingFactory(factory.django.DjangoModelFactory):
    """A hosting with its mail service; `hosting.smtp_password` holds the clear password."""

    class Meta:
        model = Hosting
        skip_postgeneration_save = True

    service_name = factory.Sequence(lambda n: f"site-{n}.example")
    customer = factory.SubFactory(CustomerFactory)
    plan = Plan.PERSO

    @factory.post_generation
    def mail_service(obj, create, extracted, **kwargs):
        if create:
            MailService.objects.get_or_create(hosting=obj, defaults=kwargs)
            obj.smtp_password = hosting_smtp_password_rotate(hosting=obj)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    hosting = factory.SubFactory(HostingFactory)
    message_id = factory.Sequence(lambda n: f"<msg-{n}@test.example>")
    sender = "www-data@test.example"
    recipients = factory.LazyFunction(
        lambda: [{"address": "someone@example.org", "status": RecipientStatus.PENDING, "code": None, "reply": ""}]
    )
    recipient_count = 1
    subject = factory.Faker("sentence")
    raw = factory.LazyAttribute(
        lambda m: f"From: {m.sender}\r\nTo: someone@example.org\r\nSubject: {m.subject}\r\n\r\nHello\r\n".encode()
    )
    size = factory.LazyAttribute(lambda m: len(m.raw or b""))
    status = MessageStatus.QUEUED
    next_attempt_at = factory.LazyFunction(timezone.now)
    held_at = factory.LazyAttribute(lambda m: timezone.now() if m.status == MessageStatus.HELD else None)
    held_until = factory.LazyAttribute(
        lambda m: timezone.now() + datetime.timedelta(hours=72) if m.status == MessageStatus.HELD else None
    )


class DeliveryErrorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeliveryError

    hosting = factory.SubFactory(HostingFactory)
    recipient = factory.Faker("email")
    reply = "550 5.1.1 User unknown"
    subject = factory.Faker("sentence")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    hosting = factory.SubFactory(HostingFactory)
    action = "block"
    actor_kind = "system"


class DailyCounterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyCounter

    hosting = factory.SubFactory(HostingFactory)
    day = factory.LazyFunction(timezone.localdate)


class ErrorDigestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ErrorDigest

    hosting = factory.SubFactory(HostingFactory)
    day = factory.LazyFunction(timezone.localdate)


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """An endpoint as webhook_endpoint_create makes it (its secret: `whsec_test`), without its URL check."""

    class Meta:
        model = WebhookEndpoint

    customer = factory.SubFactory(CustomerFactory)
    url = factory.Sequence(lambda n: f"https://hooks{n}.example.com/portal")
    events = factory.LazyFunction(lambda: ["message.sent", "message.failed"])
    secret_encrypted = factory.LazyFunction(lambda: encrypt("whsec_test"))


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    event_type = "message.sent"
    payload = factory.LazyFunction(dict)


class WebhookAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookAttempt

    delivery = factory.SubFactory(WebhookDeliveryFactory)
    status_code = 200
    duration_ms = 42
    reply = "ok"
