"""API credentials: OVH-style applications with consumer keys, and bearer tokens.

An application belongs to the customer whose developer created it. A consumer key is asked for
by an application (POST /1.0/auth/credential) with its access rules, and acts for the customer
chosen by the user who validates it in the portal; until then it is pending and grants nothing.
Consumer keys, tokens and validation links travel in clear, so only their SHA-256 digest is
stored. The application secret signs requests (OVH's scheme: the server recomputes the
signature), so the server needs it back: it is stored encrypted (Fernet), never in clear.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from api.access_rules import everything
from hosting.models import Customer


class CredentialStatus(models.TextChoices):
    """OVH's auth.CredentialStateEnum, and `revoked` (OVH deletes them; the portal keeps the row)."""

    PENDING = "pendingValidation", _("pending validation")
    VALIDATED = "validated", pgettext_lazy("consumer key", "validated")
    REFUSED = "refused", pgettext_lazy("consumer key", "refused")
    EXPIRED = "expired", pgettext_lazy("consumer key", "expired")
    REVOKED = "revoked", pgettext_lazy("consumer key", "revoked")


class ApiApplication(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_applications")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), max_length=1000, blank=True)
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


class ConsumerKeyQuerySet(models.QuerySet):
    def usable(self, now):
        """Validated, not revoked, not expired, of an application that is not revoked."""
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            status=CredentialStatus.VALIDATED,
            revoked_at__isnull=True,
            application__revoked_at__isnull=True,
        )

    def revoke(self, now) -> int:
        return self.filter(revoked_at__isnull=True).update(status=CredentialStatus.REVOKED, revoked_at=now)


class ConsumerKey(models.Model):
    """OVH's credential. `status` stores pendingValidation, validated, refused or revoked;
    `expired` is read from the clock (`status_at`): a validated key past `expires_at`, or a
    pending one whose validation link is past `validation_expires_at`."""

    application = models.ForeignKey(ApiApplication, on_delete=models.CASCADE, related_name="consumer_keys")
    # The customer it acts for: chosen by the user who validates it; none while pending.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="consumer_keys", editable=False
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(_("key prefix"), max_length=8)
    access_rules = models.JSONField(_("access rules"), default=list)
    status = models.CharField(
        _("status"), max_length=20, choices=CredentialStatus.choices, default=CredentialStatus.PENDING
    )
    redirection = models.CharField(_("redirection"), max_length=2000, blank=True)
    validation_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    validation_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    validated_at = models.DateTimeField(_("validated on"), null=True, blank=True)
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    expires_at = models.DateTimeField(_("expires on"), null=True, blank=True)
    created_at = models.DateTimeField(pgettext_lazy("API application, consumer key", "created on"), auto_now_add=True)
    revoked_at = models.DateTimeField(
        pgettext_lazy("API application, consumer key", "revoked on"), null=True, blank=True
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    objects = ConsumerKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("consumer key")
        verbose_name_plural = _("consumer keys")

    def __str__(self) -> str:
        return f"{self.key_prefix}…"

    def status_at(self, now) -> str:
        if self.status == CredentialStatus.VALIDATED and self.expires_at is not None and self.expires_at <= now:
            return CredentialStatus.EXPIRED
        if self.status == CredentialStatus.PENDING and (
            self.validation_expires_at is None or self.validation_expires_at <= now
        ):
            return CredentialStatus.EXPIRED
        return self.status

    def status_label_at(self, now) -> str:
        return CredentialStatus(self.status_at(now)).label


class ApiToken(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_tokens")
    # The application created with it: revoking the application revokes the token too.
    application = models.ForeignKey(
        ApiApplication, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens", editable=False
    )
    name = models.CharField(_("name"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(_("token prefix"), max_length=8)
    access_rules = models.JSONField(_("access rules"), default=everything)
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
