"""API credentials of a customer: OVH-style applications with consumer keys, and bearer tokens.

Consumer keys and tokens travel in clear in each request, so only their SHA-256 digest is
stored. The application secret signs requests (OVH's scheme: the server recomputes the
signature), so the server needs it back: it is stored encrypted (Fernet), never in clear.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from hosting.models import Customer


class ApiApplication(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_applications")
    name = models.CharField(_("name"), max_length=100)
    application_key = models.CharField(_("application key"), max_length=64, unique=True)
    secret_encrypted = models.TextField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(pgettext_lazy("API application, consumer key", "created on"), auto_now_add=True)
    revoked_at = models.DateTimeField(
        pgettext_lazy("API application, consumer key", "revoked on"), null=True, blank=True
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API application")
        verbose_name_plural = _("API applications")

    def __str__(self) -> str:
        return f"{self.name} ({self.application_key})"


class ConsumerKey(models.Model):
    application = models.ForeignKey(ApiApplication, on_delete=models.CASCADE, related_name="consumer_keys")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(_("key prefix"), max_length=8)
    created_at = models.DateTimeField(pgettext_lazy("API application, consumer key", "created on"), auto_now_add=True)
    revoked_at = models.DateTimeField(
        pgettext_lazy("API application, consumer key", "revoked on"), null=True, blank=True
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("consumer key")
        verbose_name_plural = _("consumer keys")

    def __str__(self) -> str:
        return f"{self.key_prefix}…"


class ApiToken(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_tokens")
    # The application created with it: revoking the application revokes the token too.
    application = models.ForeignKey(
        ApiApplication, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens", editable=False
    )
    name = models.CharField(_("name"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(_("token prefix"), max_length=8)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created on"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked on"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"
