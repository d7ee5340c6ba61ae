"""What comes back after delivery (SPEC §10.1, §10.2): the suppression list, complaints, and the
bounces nobody could attribute, kept for operators."""

from django.db import models
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting
from mailqueue.choices import BounceProblem
from mailqueue.models.queue import BatchDeleteQuerySet


class Suppression(models.Model):
    """An address a hosting's mail no longer goes to, until `expires_at` (SUPPRESSION_DAYS after
    its last hard bounce) or until someone removes it."""

    hosting = models.ForeignKey(
        Hosting, on_delete=models.CASCADE, related_name="suppressions", verbose_name=_("hosting")
    )
    address = models.CharField(_("e-mail"), max_length=320)  # lower case: one entry per mailbox
    created_at = models.DateTimeField(_("suppressed on"), default=timezone.now)
    expires_at = models.DateTimeField(_("suppressed until"))
    reason = models.CharField(_("reason"), max_length=500, blank=True)  # the error that suppressed it

    objects = BatchDeleteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppressed addresses")
        constraints = [models.UniqueConstraint(fields=["hosting", "address"], name="suppression_once")]
        indexes = [
            models.Index(fields=["hosting", "-created_at", "-id"], name="suppression_hosting_recent"),
            models.Index(fields=["expires_at"], name="suppression_expiry"),
        ]

    def __str__(self) -> str:
        return self.address


class Complaint(models.Model):
    """A recipient reported a hosting's message as spam (an RFC 5965 feedback report)."""

    hosting = models.ForeignKey(Hosting, on_delete=models.CASCADE, related_name="complaints", verbose_name=_("hosting"))
    message = models.ForeignKey(
        "mailqueue.Message",
        on_delete=models.DO_NOTHING,
        db_constraint=False,  # messages are deleted in bulk by the retention; complaints stay
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("e-mail"),
    )
    created_at = models.DateTimeField(_("received on"), default=timezone.now)
    recipient = models.CharField(_("complainant"), max_length=320)
    feedback_type = models.CharField(_("feedback type"), max_length=40, blank=True)  # abuse, fraud, …
    reporter = models.CharField(_("reported by"), max_length=200, blank=True)  # the report's User-Agent

    objects = BatchDeleteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("complaint")
        verbose_name_plural = _("complaints")
        constraints = [models.UniqueConstraint(fields=["message", "recipient"], name="complaint_once")]
        indexes = [
            models.Index(fields=["hosting", "-created_at"], name="complaint_hosting_recent"),
            models.Index(fields=["-created_at", "-id"], name="complaint_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.hosting}: {self.recipient}"


class UnattributedBounce(models.Model):
    """A message the bounce door received but could not tie to a hosting's message: kept whole,
    never dropped, never counted against a tenant."""

    created_at = models.DateTimeField(_("received on"), default=timezone.now)
    problem = models.CharField(_("problem"), max_length=12, choices=BounceProblem.choices)
    envelope_sender = models.CharField(_("envelope sender"), max_length=320, blank=True)
    envelope_recipients = models.JSONField(_("envelope recipients"), default=list)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    size = models.PositiveIntegerField(_("size"))
    raw = models.BinaryField(_("content"))

    objects = BatchDeleteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("unattributed bounce")
        verbose_name_plural = _("unattributed bounces")
        indexes = [models.Index(fields=["-created_at", "-id"], name="unattributed_recent")]

    def __str__(self) -> str:
        return f"{formats.localize(timezone.localtime(self.created_at))}: {self.get_problem_display()}"


__all__ = ["Complaint", "Suppression", "UnattributedBounce"]
