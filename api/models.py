"""API credentials of a customer: OVH-style applications with consumer keys, and bearer tokens.

Consumer keys and tokens travel in clear in each request, so only their SHA-256 digest is
stored. The application secret signs requests (OVH's scheme: the server recomputes the
signature), so the server needs it back: it is stored encrypted (Fernet), never in clear.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from hosting.models import Customer


class ApiApplication(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_applications")
    name = models.CharField(_("nom"), max_length=100)
    application_key = models.CharField(_("clé d'application"), max_length=64, unique=True)
    secret_encrypted = models.TextField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("créée le"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("révoquée le"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("application API")
        verbose_name_plural = _("applications API")

    def __str__(self) -> str:
        return f"{self.name} ({self.application_key})"


class ConsumerKey(models.Model):
    application = models.ForeignKey(ApiApplication, on_delete=models.CASCADE, related_name="consumer_keys")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(_("début de la clé"), max_length=8)
    created_at = models.DateTimeField(_("créée le"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("révoquée le"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("dernière utilisation"), null=True, blank=True)

    class Meta:
        verbose_name = _("clé consommateur")
        verbose_name_plural = _("clés consommateur")

    def __str__(self) -> str:
        return f"{self.key_prefix}…"


class ApiToken(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_tokens")
    # The application created with it: revoking the application revokes the token too.
    application = models.ForeignKey(
        ApiApplication, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens", editable=False
    )
    name = models.CharField(_("nom"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(_("début du jeton"), max_length=8)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("créé le"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("révoqué le"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("dernière utilisation"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("jeton API")
        verbose_name_plural = _("jetons API")

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"
