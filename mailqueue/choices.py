"""The vocabulary of the mail service: states, reasons, actors, actions, message statuses."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class State(models.TextChoices):
    ACTIVE = "active", _("Actif")
    BLOCKED = "blocked", _("Inactif")
    PURGING = "purging", _("Purge")


class BlockReason(models.TextChoices):
    CUSTOMER = "customer", _("bloqué par le client")
    OPERATOR = "operator", _("bloqué par un opérateur")
    RATE = "rate", _("trop d'e-mails en trop peu de temps")
    BOUNCE = "bounce", _("trop d'e-mails en erreur")
    SPAM = "spam", _("envoi abusif (spam)")


class ActorKind(models.TextChoices):
    CUSTOMER = "customer", _("client")
    OPERATOR = "operator", _("opérateur")
    API = "api", _("API")
    SYSTEM = "system", _("système")


class Action(models.TextChoices):
    BLOCK = "block", _("blocage")
    UNBLOCK = "unblock", _("déblocage")
    PURGE = "purge", _("demande de purge")
    CANCEL_PURGE = "cancel_purge", _("annulation de la purge")
    COMPLETE_PURGE = "complete_purge", _("fin de la purge")
    AUTO_BLOCK = "auto_block", _("blocage automatique")
    CHANGE_RECIPIENT = "change_recipient", _("changement du destinataire des rapports")
    SET_LIMIT = "set_limit", _("changement de la limite horaire")
    EXPIRE = "expire", _("expiration des e-mails en attente")
    RESET_FORCE = "reset_force", _("retour à la tolérance d'erreurs normale")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("en file")
    HELD = "held", _("en attente")
    DEFERRED = "deferred", _("différé")
    SENDING = "sending", _("en cours d'envoi")
    SENT = "sent", _("envoyé")
    FAILED = "failed", _("en erreur")


class RecipientStatus(models.TextChoices):
    PENDING = "pending", _("à envoyer")
    SENT = "sent", _("envoyé")
    FAILED = "failed", _("en erreur")
