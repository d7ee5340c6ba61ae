"""The mail service of each hosting, its messages, delivery errors, counters and audit log.

Only the services of this app (docs/ARCHITECTURE.md) change these rows; the queue's vocabulary
(held, due, hold, release) lives once on the QuerySets below.
"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from hosting.models import PLAN_HOURLY_LIMITS, Hosting, Plan
from mailqueue.choices import Action, ActorKind, BlockReason, Door, ErrorKind, MessageStatus, State

EMAIL = _("e-mail")


class MailServiceQuerySet(models.QuerySet):
    def with_hourly_limit(self):
        """Annotate `effective_hourly_limit`: the operator's override, else the plan's (SPEC §4.2).
        The same rule as `MailService.hourly_limit`, in SQL."""
        by_plan = Case(
            *(When(hosting__plan=plan, then=Value(limit)) for plan, limit in PLAN_HOURLY_LIMITS.items()),
            output_field=models.PositiveIntegerField(),
        )
        return self.annotate(effective_hourly_limit=Coalesce("hourly_limit_override", by_plan))


class MailService(models.Model):
    hosting = models.OneToOneField(
        Hosting, on_delete=models.CASCADE, primary_key=True, related_name="mail_service", verbose_name=_("hosting")
    )
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.ACTIVE)
    block_reason = models.CharField(_("block reason"), max_length=10, choices=BlockReason.choices, blank=True)
    report_recipient = models.EmailField(_("error report to"), blank=True)
    hourly_limit_override = models.PositiveIntegerField(_("hourly limit override"), null=True, blank=True)
    state_changed_at = models.DateTimeField(_("state since"), default=timezone.now)
    purge_requested_at = models.DateTimeField(_("purge requested at"), null=True, blank=True)
    purge_due_at = models.DateTimeField(_("purge scheduled at"), null=True, blank=True)
    purge_started_at = models.DateTimeField(_("purge started at"), null=True, blank=True)
    purge_deleted = models.PositiveBigIntegerField(_("deleted by the purge"), default=0)  # so far, while it runs
    # Force (SPEC §9.1): active after unblocking a `bounce` block, with the error ratio doubled.
    forced = models.BooleanField(_("error tolerance doubled"), default=False)
    # When the customer last purged a `spam` block: a second one within SPAM_REPEAT_DAYS is support's.
    spam_purged_at = models.DateTimeField(_("spam block purged by the customer on"), null=True, blank=True)
    # Set when the block is made (SPEC §9.1): a repeated spam block is lifted by support only.
    support_only = models.BooleanField(_("to be lifted by support only"), default=False)
    # Domains (and their subdomains) an operator allowed this hosting to send as (SPEC §11.2).
    allowed_sender_domains = models.JSONField(_("allowed sender domains"), default=list, blank=True)

    objects = MailServiceQuerySet.as_manager()

    class Meta:
        verbose_name = _("e-mail service")
        verbose_name_plural = _("e-mail services")
        permissions = [("act_on_mailservice", _("Can block, unblock and purge e-mail services"))]
        indexes = [
            models.Index(fields=["purge_due_at"], condition=Q(state="purging"), name="mailservice_purge_due"),
        ]

    def __str__(self) -> str:
        return _("E-mail service of %(hosting)s") % {"hosting": self.hosting}

    @property
    def hourly_limit(self) -> int:
        if self.hourly_limit_override is not None:
            return self.hourly_limit_override
        return PLAN_HOURLY_LIMITS[Plan(self.hosting.plan)]

    @property
    def state_label(self) -> str:
        """The badge's word: Force is shown apart from Actif (SPEC §9.1)."""
        if self.state == State.ACTIVE and self.forced:
            return _("Forced")
        return self.get_state_display()

    def spam_repeat_at(self, now: datetime.datetime) -> bool:
        """Whether a spam block made at `now` repeats, within SPAM_REPEAT_DAYS, one the customer purged."""
        return self.spam_purged_at is not None and now - self.spam_purged_at <= datetime.timedelta(
            days=settings.SPAM_REPEAT_DAYS
        )

    @property
    def effective_report_recipient(self) -> str:
        """Where error reports and notices go: the configured recipient, else the customer's contact."""
        return self.report_recipient or self.hosting.customer.contact_email


class AppendOnlyQuerySet(models.QuerySet):
    """Events are never changed or deleted in bulk (a hosting's deletion still cascades)."""

    def update(self, **kwargs):
        raise ValueError("Events are append-only")

    def delete(self):
        raise ValueError("Events are append-only")


class Event(models.Model):
    """Append-only audit record of every action on a mail service."""

    hosting = models.ForeignKey(
        Hosting, on_delete=models.CASCADE, related_name="mail_events", verbose_name=_("hosting")
    )
    created_at = models.DateTimeField(_("date"), default=timezone.now)
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    from_state = models.CharField(_("state before"), max_length=10, choices=State.choices, blank=True)
    to_state = models.CharField(_("state after"), max_length=10, choices=State.choices, blank=True)
    reason = models.CharField(_("reason"), max_length=10, choices=BlockReason.choices, blank=True)
    actor_kind = models.CharField(_("actor"), max_length=10, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("user")
    )
    actor_label = models.CharField(_("actor identity"), max_length=150, blank=True)
    message_count = models.PositiveBigIntegerField(_("number of e-mails"), null=True, blank=True)
    detail = models.CharField(_("details"), max_length=300, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            models.Index(fields=["hosting", "-created_at", "-id"], name="event_hosting_recent"),
            models.Index(fields=["-created_at", "-id"], name="event_recent"),  # the admin's list order
        ]

    def __str__(self) -> str:
        when = formats.localize(timezone.localtime(self.created_at))
        action = capfirst(self.get_action_display())
        return _("%(action)s, %(hosting)s, %(date)s") % {"action": action, "hosting": self.hosting, "date": when}

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Events are append-only")
        kwargs["force_insert"] = True  # an explicit id must not overwrite an existing event
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Events are append-only")


def held_fields(now: datetime.datetime) -> dict:
    """What a held message is: kept HOLD_HOURS from now, not due, claimed by no worker."""
    return {
        "status": MessageStatus.HELD,
        "held_at": now,
        "held_until": now + datetime.timedelta(hours=settings.HOLD_HOURS),
        "next_attempt_at": None,
        "claim_token": None,
        "claimed_at": None,
    }


def queued_fields(now: datetime.datetime) -> dict:
    """What a message waiting for delivery is: due now, neither held nor claimed."""
    return {
        "status": MessageStatus.QUEUED,
        "held_at": None,
        "held_until": None,
        "next_attempt_at": now,
        "claim_token": None,
        "claimed_at": None,
    }


class BatchDeleteQuerySet(models.QuerySet):
    def delete_batch(self, batch_size: int) -> int:
        """Delete up to `batch_size` of these rows in one statement
        (DELETE … WHERE id IN (SELECT id … LIMIT n) AND <the same conditions>); return how many.

        The conditions are repeated on the outer statement so a row changed meanwhile (e.g. an
        unblocked message no longer held) is left alone.
        """
        batch = self.order_by().values("id")[:batch_size]  # no order: the best index, no sort
        deleted, _per_model = self.filter(id__in=batch).delete()
        return deleted


class MessageQuerySet(BatchDeleteQuerySet):
    def held(self):
        return self.filter(status=MessageStatus.HELD)

    def pending(self):
        """Waiting for delivery: queued (maybe for the hourly limit) or deferred (back-off)."""
        return self.filter(status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED])

    def due(self, now: datetime.datetime):
        """Queued messages whose time has come (the claim's candidates)."""
        return self.filter(status=MessageStatus.QUEUED, next_attempt_at__lte=now)

    def deferred_due(self, now: datetime.datetime):
        return self.filter(status=MessageStatus.DEFERRED, next_attempt_at__lte=now)

    def finished(self):
        return self.filter(status__in=[MessageStatus.SENT, MessageStatus.FAILED])

    def hold(self, now: datetime.datetime) -> int:
        """Hold these messages for HOLD_HOURS from `now`; returns how many."""
        return self.update(**held_fields(now))

    def release(self, now: datetime.datetime) -> int:
        """Put these messages back in the delivery queue, due now; returns how many."""
        return self.update(**queued_fields(now))


class Message(models.Model):
    hosting = models.ForeignKey(Hosting, on_delete=models.CASCADE, related_name="messages", verbose_name=_("hosting"))
    message_id = models.CharField(_("message-id"), max_length=255, db_index=True)
    sender = models.CharField(_("sender"), max_length=320, blank=True)
    # [{"address", "status": RecipientStatus, "code", "reply"}, and later "bounce" / "delayed": {"at", "status",
    # "diagnostic"} from a delivery report (mailqueue.bounces)]
    recipients = models.JSONField(_("recipients"))
    recipient_count = models.PositiveSmallIntegerField(_("number of recipients"), default=0)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    size = models.PositiveIntegerField(_("size"))
    raw = models.BinaryField(_("content"), null=True, editable=False)  # dropped once delivered or failed
    status = models.CharField(_("status"), max_length=10, choices=MessageStatus.choices)
    created_at = models.DateTimeField(_("received on"), default=timezone.now)
    held_at = models.DateTimeField(_("held on"), null=True, blank=True)
    held_until = models.DateTimeField(_("held until"), null=True, blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt on"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claim_token = models.UUIDField(_("claim"), null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(_("claimed by a worker on"), null=True, blank=True)
    completed_at = models.DateTimeField(_("finished on"), null=True, blank=True)
    last_reply = models.CharField(_("last reply"), max_length=500, blank=True)
    # Who handed it in, for the Received: trace header written at delivery (SPEC §11.2).
    door = models.CharField(_("door"), max_length=10, choices=Door.choices, default=Door.SMTP)
    client_address = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    # SpamAssassin's verdict before delivery (SPEC §11.1): the rules are for operators only.
    spam_score = models.FloatField(_("spam score"), null=True, blank=True)
    spam_rules = models.CharField(_("spam rules"), max_length=500, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("e-mail")
        verbose_name_plural = _("e-mails")
        indexes = [
            models.Index(fields=["hosting", "status"], name="message_hosting_status"),
            models.Index(fields=["hosting", "-created_at"], name="message_hosting_created"),
            models.Index(fields=["hosting", "-created_at", "-id"], name="message_hosting_log"),  # the log's pages
            models.Index(fields=["created_at"], name="message_created"),
            models.Index(fields=["held_until"], condition=Q(status="held"), name="message_held_until"),
            models.Index(fields=["hosting", "id"], condition=Q(status="held"), name="message_held_hosting"),
            models.Index(
                fields=["hosting", "held_until"], condition=Q(status="held"), name="message_held_hosting_until"
            ),
            models.Index(fields=["next_attempt_at", "id"], condition=Q(status="queued"), name="message_queued_due_id"),
            models.Index(fields=["next_attempt_at"], condition=Q(status="deferred"), name="message_deferred_due"),
            models.Index(fields=["claimed_at"], condition=Q(status="sending"), name="message_sending_claimed"),
            models.Index(fields=["claim_token"], condition=Q(status="sending"), name="message_claim_token"),
            models.Index(fields=["completed_at"], condition=Q(status__in=["sent", "failed"]), name="message_completed"),
        ]

    def __str__(self) -> str:
        return self.message_id

    def hold(self, now: datetime.datetime) -> None:
        """Hold this message (in memory; the caller saves it)."""
        for name, value in held_fields(now).items():
            setattr(self, name, value)


class DeliveryError(models.Model):
    """A recipient refused for good (OVH's "bounce"): kept after its message is gone."""

    hosting = models.ForeignKey(
        Hosting, on_delete=models.CASCADE, related_name="delivery_errors", verbose_name=_("hosting")
    )
    # No database constraint: purge and retention delete messages in bulk, errors stay.
    message = models.ForeignKey(
        Message, models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+", verbose_name=EMAIL
    )
    created_at = models.DateTimeField(_("date"), default=timezone.now)
    recipient = models.CharField(EMAIL, max_length=320)
    reply = models.CharField(_("message"), max_length=500)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    kind = models.CharField(_("origin"), max_length=10, choices=ErrorKind.choices, default=ErrorKind.RELAY)
    # Hard (5.x.x) or soft (4.x.x, or no status: a relay that gave up after the retry limit).
    permanent = models.BooleanField(_("permanent"), default=True)
    status = models.CharField(_("status code"), max_length=12, blank=True)  # RFC 3463, e.g. 5.1.1

    objects = BatchDeleteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("e-mail in error")
        verbose_name_plural = _("e-mails in error")
        indexes = [
            models.Index(fields=["hosting", "-created_at", "-id"], name="error_hosting_recent"),
            models.Index(fields=["-created_at", "-id"], name="error_recent"),  # retention, admin list order
        ]
        constraints = [
            # A delivery report counted once per message and recipient, however often it arrives.
            models.UniqueConstraint(fields=["message", "recipient"], condition=Q(kind="dsn"), name="error_dsn_once"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.reply[:60]}"


class DailyCounter(models.Model):
    """Per hosting and local day, kept up to date so reads never count the messages table."""

    hosting = models.ForeignKey(
        Hosting, on_delete=models.CASCADE, related_name="daily_counters", verbose_name=_("hosting")
    )
    day = models.DateField(_("day"))
    sent = models.PositiveIntegerField(_("sent"), default=0)
    errors = models.PositiveIntegerField(_("in error"), default=0)
    held = models.PositiveIntegerField(_("held"), default=0)
    purged = models.PositiveIntegerField(_("held e-mails purged"), default=0)
    expired = models.PositiveIntegerField(_("held e-mails expired"), default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["hosting", "day"], name="dailycounter_unique")]
        verbose_name = _("daily counter")
        verbose_name_plural = _("daily counters")

    def __str__(self) -> str:
        return f"{self.hosting}, {formats.date_format(self.day)}"


class RelayHandoff(models.Model):
    """`count` messages of a hosting handed to the relay by one claim at `at` (the hour adds them up)."""

    hosting = models.ForeignKey(Hosting, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    claim_token = models.UUIDField(null=True, blank=True, db_index=True)  # the claim that took these slots
    count = models.PositiveIntegerField(
        default=1, db_default=1
    )  # db_default: a release before this one inserts without it

    objects = BatchDeleteQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["hosting", "at"], name="handoff_hosting_at")]

    def __str__(self) -> str:
        return f"{self.hosting_id} {self.at:%Y-%m-%d %H:%M:%S}"
