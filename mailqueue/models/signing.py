"""DKIM keys (SPEC §11.2): each hosting signs with its own key; a rotated key stays published
(and listed on the SMTP page) for DKIM_ROTATION_DAYS so mail signed before the rotation still
verifies."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hosting.models import Hosting


class DkimKey(models.Model):
    hosting = models.ForeignKey(Hosting, on_delete=models.CASCADE, related_name="dkim_keys", verbose_name=_("hosting"))
    selector = models.CharField(_("selector"), max_length=63)
    private_key_encrypted = models.TextField(editable=False)  # PEM, encrypted at rest (hosting.encryption)
    public_key = models.TextField(_("public key"))  # base64 DER, the p= of the DNS record
    created_at = models.DateTimeField(_("created on"), default=timezone.now)
    retired_at = models.DateTimeField(_("replaced on"), null=True, blank=True)  # None: the key that signs

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("DKIM key")
        verbose_name_plural = _("DKIM keys")
        constraints = [
            models.UniqueConstraint(fields=["hosting"], condition=Q(retired_at__isnull=True), name="dkim_one_active"),
            models.UniqueConstraint(fields=["hosting", "selector"], name="dkim_selector_once"),
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.hosting_id}"
