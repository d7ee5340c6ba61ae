"""Error digests: one row per hosting and day makes the daily report a once-only affair."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting


class DigestStatus(models.TextChoices):
    PENDING = "pending", _("à envoyer")
    SENDING = "sending", _("en cours d'envoi")
    SENT = "sent", _("envoyé")
    FAILED = "failed", _("échec de l'envoi")


class ErrorDigest(models.Model):
    hosting = models.ForeignKey(
        Hosting, on_delete=models.CASCADE, related_name="error_digests", verbose_name=_("hébergement")
    )
    day = models.DateField(_("jour"))
    status = models.CharField(_("statut"), max_length=10, choices=DigestStatus.choices, default=DigestStatus.PENDING)
    recipient = models.EmailField(_("destinataire"), blank=True)
    error_count = models.PositiveIntegerField(_("nombre d'erreurs"), default=0)
    attempts = models.PositiveSmallIntegerField(_("tentatives"), default=0)
    last_error = models.CharField(_("dernière erreur"), max_length=500, blank=True)
    # While sending: the run that took it owns it until then; after, another run may retry it.
    lease_until = models.DateTimeField(_("réservé jusqu'à"), null=True, blank=True)
    created_at = models.DateTimeField(_("créé le"), default=timezone.now)
    sent_at = models.DateTimeField(_("envoyé le"), null=True, blank=True)

    class Meta:
        ordering = ["-day", "hosting_id"]
        constraints = [models.UniqueConstraint(fields=["hosting", "day"], name="errordigest_unique")]
        indexes = [models.Index(fields=["-day", "hosting"], name="errordigest_recent")]
        verbose_name = _("rapport d'erreurs")
        verbose_name_plural = _("rapports d'erreurs")

    def __str__(self) -> str:
        return f"{self.hosting_id} {self.day} ({self.status})"
