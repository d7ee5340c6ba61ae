"""SPEC §9.1: Force after a `bounce` block, the spam block lifted by a purge, the repeated spam
block that only support lifts, and the abuse notice « Abus avec votre hébergement … »."""

import datetime

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client
from django.utils import timezone, translation

from mailqueue import abuse, dispatch
from mailqueue.blocking import mail_service_auto_block, mail_service_block, mail_service_force_reset
from mailqueue.blocking import mail_service_unblock as unblock
from mailqueue.models import Action, Event, MailService, MessageStatus, State
from mailqueue.purge import mail_service_purge_cancel, mail_service_purge_request, purge_run
from mailqueue.state import Actor, MailServiceError
from portal.celery import app as celery_app
from tests.factories import HostingFactory, MembershipFactory, MessageFactory, UserFactory
from tests.mailqueue.test_abuse import _finished

pytestmark = pytest.mark.django_db

REPEAT_REFUSAL = (
    "Ce blocage pour envoi abusif ne peut être levé que par notre support. Répondez à l'e-mail "
    "« Abus avec votre hébergement {service} » que vous avez reçu."
)


@pytest.fixture
def tasks_inline(monkeypatch):
    """Tasks enqueued after commit run in-process (unit tests without a worker)."""
    monkeypatch.setattr(dispatch, "task_send", lambda name, *args, **kwargs: celery_app.tasks[name](*args))


def service(hosting) -> MailService:
    return MailService.objects.get(hosting=hosting)


def purged(hosting, actor: Actor, time_machine, settings) -> None:
    mail_service_purge_request(hosting=hosting, actor=actor)
    time_machine.shift(datetime.timedelta(seconds=settings.PURGE_GRACE_SECONDS + 1))
    assert purge_run(hosting_id=hosting.pk) is not None


def test_unblocking_a_bounce_block_gives_force_and_a_purge_ends_it(time_machine, settings):
    time_machine.move_to(timezone.now(), tick=False)
    hosting = HostingFactory()
    customer = Actor.api("key-1")
    mail_service_auto_block(hosting=hosting, reason="bounce")
    unblock(hosting=hosting, actor=customer)
    forced = service(hosting)
    assert (forced.state, forced.forced, forced.block_reason) == (State.ACTIVE, True, "")
    with translation.override("fr"):
        assert forced.state_label == "Force"
    with translation.override("en"):
        assert forced.state_label == "Forced"
    assert Event.objects.filter(hosting=hosting, action=Action.UNBLOCK).get().detail == "force"

    # Blocked again and purged: back to Actif with the normal ratio.
    mail_service_block(hosting=hosting, actor=customer)
    purged(hosting, customer, time_machine, settings)
    assert (service(hosting).state, service(hosting).forced) == (State.ACTIVE, False)


def test_unblocking_a_customer_block_does_not_force():
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.api("key-1"))
    unblock(hosting=hosting, actor=Actor.api("key-1"))
    assert service(hosting).forced is False


def test_an_operator_resets_force_and_says_so_in_the_log():
    hosting = HostingFactory()
    operator = Actor.operator(UserFactory(is_staff=True))
    mail_service_auto_block(hosting=hosting, reason="bounce")
    unblock(hosting=hosting, actor=Actor.api("key-1"))
    with pytest.raises(MailServiceError):
        mail_service_force_reset(hosting=hosting, actor=Actor.api("key-1"))
    mail_service_force_reset(hosting=hosting, actor=operator)
    assert service(hosting).forced is False
    assert Event.objects.filter(hosting=hosting, action=Action.RESET_FORCE).count() == 1
    with pytest.raises(MailServiceError):
        mail_service_force_reset(hosting=hosting, actor=operator)  # not forced any more


@pytest.mark.parametrize(("failed", "blocked"), [(25, False), (35, True)])
def test_the_abuse_check_doubles_the_ratio_while_forced(failed, blocked, settings, tasks_inline):
    settings.ABUSE_BOUNCE_RATIO = 0.3  # forced: 0.6
    hosting = HostingFactory()
    mail_service_auto_block(hosting=hosting, reason="bounce")
    unblock(hosting=hosting, actor=Actor.api("key-1"))
    MailService.objects.filter(hosting=hosting).update(state_changed_at=timezone.now() - datetime.timedelta(hours=2))
    _finished(hosting, sent=50 - failed, failed=failed)  # 50 % or 70 % in error

    assert abuse.abuse_check() == ([(hosting.pk, "bounce")] if blocked else [])
    assert service(hosting).state == (State.BLOCKED if blocked else State.ACTIVE)


def test_the_customer_lifts_a_spam_block_by_purging_not_by_unblocking(time_machine, settings, tasks_inline):
    time_machine.move_to(timezone.now(), tick=False)
    hosting = HostingFactory()
    customer = Actor.api("key-1")
    mail_service_auto_block(hosting=hosting, reason="spam")
    MessageFactory(hosting=hosting, status=MessageStatus.HELD)
    with pytest.raises(MailServiceError) as refused:
        unblock(hosting=hosting, actor=customer)
    assert str(refused.value.message) == "Un blocage pour envoi abusif se lève en purgeant les e-mails en attente."

    purged(hosting, customer, time_machine, settings)

    lifted = service(hosting)
    assert (lifted.state, lifted.block_reason, lifted.forced) == (State.ACTIVE, "", False)
    assert lifted.spam_purged_at == timezone.now()


@pytest.mark.parametrize(("days_later", "support_only"), [(29, True), (31, False)])
def test_a_second_spam_block_soon_after_a_purge_is_for_support_only(
    days_later, support_only, time_machine, settings, tasks_inline
):
    time_machine.move_to(datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC), tick=False)
    hosting = HostingFactory()
    customer = Actor.api("key-1")
    operator = Actor.operator(UserFactory(is_staff=True))
    mail_service_auto_block(hosting=hosting, reason="spam")
    purged(hosting, customer, time_machine, settings)
    time_machine.shift(datetime.timedelta(days=days_later))
    mail_service_block(hosting=hosting, actor=operator, reason="spam")

    if support_only:
        for act in (mail_service_purge_request, unblock):
            with pytest.raises(MailServiceError) as refused:
                act(hosting=hosting, actor=customer)
            assert str(refused.value.message) == REPEAT_REFUSAL.format(service=hosting.service_name)
        purged(hosting, operator, time_machine, settings)  # support may still act
        assert service(hosting).state == State.ACTIVE
    else:
        purged(hosting, customer, time_machine, settings)
        assert service(hosting).state == State.ACTIVE


@pytest.mark.parametrize(
    ("language", "subject", "phrase"),
    [
        ("fr", "Abus avec votre hébergement {service}", "un formulaire de contact utilisé par un robot"),
        ("en", "Abuse with your web hosting {service}", "a contact form used by a robot"),
    ],
)
def test_every_spam_block_sends_the_abuse_notice_once(
    language, subject, phrase, tasks_inline, django_capture_on_commit_callbacks
):
    membership = MembershipFactory(customer__language=language, customer__contact_email="owner@shop.example")
    hosting = HostingFactory(customer=membership.customer)
    with django_capture_on_commit_callbacks(execute=True):
        mail_service_block(hosting=hosting, actor=Actor.operator(UserFactory(is_staff=True)), reason="spam")

    [notice] = mail.outbox
    assert notice.to == ["owner@shop.example"]
    assert notice.subject == subject.format(service=hosting.service_name)
    assert phrase in notice.body
    html, mimetype = notice.alternatives[0]
    assert mimetype == "text/html" and phrase in html
    # A redelivered task sends nothing more; a platform spam block sends the abuse notice, not the other.
    event = Event.objects.get(hosting=hosting, action=Action.BLOCK)
    assert celery_app.tasks["mailqueue.tasks.abuse_notify"](event.pk) is False
    assert len(mail.outbox) == 1

    other = HostingFactory(customer=membership.customer)
    with django_capture_on_commit_callbacks(execute=True):
        mail_service_auto_block(hosting=other, reason="spam")
    assert [message.subject for message in mail.outbox[1:]] == [subject.format(service=other.service_name)]


def test_the_portal_and_the_api_show_force(client: Client):
    membership = MembershipFactory()
    hosting = HostingFactory(customer=membership.customer)
    mail_service_auto_block(hosting=hosting, reason="bounce")
    unblock(hosting=hosting, actor=Actor.customer(membership.user))
    client.force_login(membership.user)

    page = client.get(f"/hostings/{hosting.service_name}/emails/").content.decode()
    assert '<span class="badge badge-active">Force</span>' in page
    assert "tolérance d&#x27;erreurs doublée" in page or "tolérance d'erreurs doublée" in page
    assert client.get(f"/1.0/hosting/web/{hosting.service_name}/email").json()["state"] == "force"


def test_a_support_only_spam_block_stays_so_when_an_operator_starts_a_purge(time_machine, settings, tasks_inline):
    time_machine.move_to(datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC), tick=False)
    hosting = HostingFactory()
    customer = Actor.api("key-1")
    operator = Actor.operator(UserFactory(is_staff=True))
    mail_service_auto_block(hosting=hosting, reason="spam")
    purged(hosting, customer, time_machine, settings)
    time_machine.shift(datetime.timedelta(days=20))
    mail_service_auto_block(hosting=hosting, reason="spam")  # a repeat: support's
    time_machine.shift(datetime.timedelta(days=20))
    mail_service_purge_request(hosting=hosting, actor=operator)

    with pytest.raises(MailServiceError):
        mail_service_purge_cancel(hosting=hosting, actor=customer)  # the customer cannot take it back
    assert service(hosting).state == State.PURGING
    mail_service_purge_cancel(hosting=hosting, actor=operator)
    for act in (mail_service_purge_request, unblock):
        with pytest.raises(MailServiceError):
            act(hosting=hosting, actor=customer)


def test_an_operator_resets_force_while_the_service_is_blocked():
    hosting = HostingFactory()
    mail_service_auto_block(hosting=hosting, reason="bounce")
    unblock(hosting=hosting, actor=Actor.api("key-1"))
    mail_service_block(hosting=hosting, actor=Actor.api("key-1"))
    mail_service_force_reset(hosting=hosting, actor=Actor.operator(UserFactory(is_staff=True)))
    unblock(hosting=hosting, actor=Actor.api("key-1"))
    assert (service(hosting).state, service(hosting).forced) == (State.ACTIVE, False)


class FlakyMailer(BaseEmailBackend):
    """The platform's mailer down for the first two tries, then up."""

    calls = 0

    def send_messages(self, messages):
        FlakyMailer.calls += 1
        if FlakyMailer.calls <= 2:
            raise ConnectionRefusedError("mailer down")
        mail.outbox.extend(messages)
        return len(messages)


def test_an_abuse_notice_whose_mailer_fails_is_retried_until_sent(settings):
    settings.EMAIL_BACKEND = f"{__name__}.FlakyMailer"
    FlakyMailer.calls = 0
    hosting = HostingFactory()
    mail_service_block(hosting=hosting, actor=Actor.operator(UserFactory(is_staff=True)), reason="spam")
    event = Event.objects.get(hosting=hosting, action=Action.BLOCK)

    result = celery_app.tasks["mailqueue.tasks.abuse_notify"].apply(args=(event.pk,))

    assert result.successful() and result.result is True
    assert FlakyMailer.calls == 3
    assert [message.subject for message in mail.outbox] == [f"Abus avec votre hébergement {hosting.service_name}"]
