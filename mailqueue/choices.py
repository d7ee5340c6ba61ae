"""The vocabulary of the mail service: states, reasons, actors, actions, message statuses, errors."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class State(models.TextChoices):
    ACTIVE = "active", _("Active")
    BLOCKED = "blocked", _("Blocked")
    PURGING = "purging", _("Purging")


class BlockReason(models.TextChoices):
    CUSTOMER = "customer", _("blocked by the customer")
    OPERATOR = "operator", _("blocked by an operator")
    RATE = "rate", _("too many e-mails too fast")
    BOUNCE = "bounce", _("too many e-mails in error")
    SPAM = "spam", _("abusive sending (spam)")


class ActorKind(models.TextChoices):
    CUSTOMER = "customer", _("customer")
    OPERATOR = "operator", _("operator")
    API = "api", _("API")
    SYSTEM = "system", _("system")


class Action(models.TextChoices):
    BLOCK = "block", _("block")
    UNBLOCK = "unblock", _("unblock")
    PURGE = "purge", _("purge request")
    CANCEL_PURGE = "cancel_purge", _("purge cancellation")
    COMPLETE_PURGE = "complete_purge", _("purge completion")
    AUTO_BLOCK = "auto_block", _("automatic block")
    CHANGE_RECIPIENT = "change_recipient", _("report recipient change")
    SET_LIMIT = "set_limit", _("hourly limit change")
    EXPIRE = "expire", _("expiry of held e-mails")
    RESET_FORCE = "reset_force", _("back to the normal error tolerance")
    UNSUPPRESS = "unsuppress", _("suppressed address removal")
    DELETE_MESSAGES = "delete_messages", _("deletion of e-mails")
    RETRY_MESSAGES = "retry_messages", _("immediate retry of deferred e-mails")
    SET_SENDER_DOMAINS = "sender_domains", _("allowed sender domains change")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    HELD = "held", _("held")
    DEFERRED = "deferred", _("deferred")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")


class RecipientStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")


class ErrorKind(models.TextChoices):
    """Where a delivery error came from (SPEC §10.1, §10.2)."""

    RELAY = "relay", _("refused by the relay")
    DSN = "dsn", _("bounced later (delivery report)")
    SUPPRESSED = "suppressed", _("suppressed address")
    SPAM = "spam", _("considered as spam")


class BounceProblem(models.TextChoices):
    """Why a message received by the bounce door could not be attributed (SPEC §10.1)."""

    NO_TOKEN = "no_token", _("no return-path token")
    FORGED = "forged", _("forged or damaged token")
    UNKNOWN_MESSAGE = "unknown", _("e-mail no longer known")
    UNRECOGNISED = "unrecognised", _("not recognised as a bounce")


class WebhookEvent(models.TextChoices):
    """What an endpoint can be told about (SPEC §10.4)."""

    MESSAGE_SENT = "message.sent", _("e-mail sent")
    MESSAGE_DEFERRED = "message.deferred", _("e-mail deferred")
    MESSAGE_FAILED = "message.failed", _("e-mail failed")
    MESSAGE_BOUNCED = "message.bounced", _("e-mail bounced later")
    MESSAGE_HELD = "message.held", _("e-mail held")
    MESSAGE_EXPIRED = "message.expired", _("held e-mails expired")
    MESSAGE_PURGED = "message.purged", _("held e-mails purged")
    SERVICE_STATE_CHANGED = "service.state_changed", _("service state changed")
    TEST = "test", _("test event")


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    DELIVERED = "delivered", _("delivered")
    FAILED = "failed", _("failed")


class Door(models.TextChoices):
    """Where a message came in (SPEC §4.1); `sendmail` submits through the SMTP door."""

    SMTP = "smtp", _("SMTP")
    API = "api", _("API")
