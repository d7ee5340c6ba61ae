"""Error digests: one row per hosting and day makes the daily report a once-only affair."""

from django.db import models
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting


class DigestStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("sending failed")


class ErrorDigest(models.Model):
    hosting = models.ForeignKey(
        Hosting, on_delete=models.CASCADE, related_name="error_digests", verbose_name=_("hosting")
    )
    day = models.DateField(_("day"))
    status = models.CharField(_("status"), max_length=10, choices=DigestStatus.choices, default=DigestStatus.PENDING)
    recipient = models.EmailField(_("recipient"), blank=True)
    error_count = models.PositiveIntegerField(_("number of errors"), default=0)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    # While sending: the run that took it owns it until then; after, another run may retry it.
    lease_until = models.DateTimeField(_("reserved until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created on"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent on"), null=True, blank=True)

    class Meta:
        ordering = ["-day", "hosting_id"]
        constraints = [models.UniqueConstraint(fields=["hosting", "day"], name="errordigest_unique")]
        indexes = [models.Index(fields=["-day", "hosting"], name="errordigest_recent")]
        verbose_name = _("error report")
        verbose_name_plural = _("error reports")

    def __str__(self) -> str:
        values = {"hosting": self.hosting, "day": formats.date_format(self.day), "status": self.get_status_display()}
        return _("Error report of %(hosting)s for %(day)s (%(status)s)") % values
