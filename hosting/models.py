"""Customers (tenants), their members and their web hostings."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Plan(models.TextChoices):
    STARTER = "starter", "Starter"
    PERSO = "perso", "Perso"
    PRO = "pro", "Pro"
    PERFORMANCE = "performance", "Performance"


# Messages a hosting may hand to the relay in any rolling hour, per plan (SPEC §4.2).
PLAN_HOURLY_LIMITS = {
    Plan.STARTER: 20,
    Plan.PERSO: 100,
    Plan.PRO: 200,
    Plan.PERFORMANCE: 2000,
}


class Language(models.TextChoices):
    FR = "fr", "Français"
    EN = "en", "English"


class Customer(models.Model):
    slug = models.SlugField(_("identifier"), unique=True)
    name = models.CharField(_("name"), max_length=200)
    contact_email = models.EmailField(_("contact e-mail"))
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.FR)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="customers", verbose_name=_("members")
    )
    created_at = models.DateTimeField(_("created on"), auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("customer")
    )
    created_at = models.DateTimeField(_("member since"), auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "customer"], name="membership_unique")]
        verbose_name = _("member")
        verbose_name_plural = _("members")

    def __str__(self) -> str:
        return _("%(user)s, member of %(customer)s") % {"user": self.user, "customer": self.customer}


class Hosting(models.Model):
    service_name = models.CharField(_("service name"), max_length=253, unique=True)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="hostings", verbose_name=_("customer")
    )
    plan = models.CharField(_("plan"), max_length=20, choices=Plan.choices, default=Plan.PERSO)
    # SHA-256 of a generated 192-bit secret: such entropy needs no key stretching, and the
    # SMTP door checks it on every connection (README, "The mail service").
    smtp_password_hash = models.CharField(_("SMTP password digest"), max_length=100, blank=True, editable=False)
    smtp_password_changed_at = models.DateTimeField(
        _("SMTP password changed on"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created on"), auto_now_add=True)

    class Meta:
        ordering = ["service_name"]
        constraints = [
            # One name, one hosting, whatever its case: hosting.names stores the lower-case form.
            models.UniqueConstraint(
                Lower("service_name"),
                name="hosting_service_name_ci_unique",
                violation_error_message=_("This service name is already taken."),
            ),
        ]
        verbose_name = _("hosting")
        verbose_name_plural = _("hostings")

    def __str__(self) -> str:
        return self.service_name

    @property
    def plan_hourly_limit(self) -> int:
        return PLAN_HOURLY_LIMITS[Plan(self.plan)]
