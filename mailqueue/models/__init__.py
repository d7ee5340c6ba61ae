"""The mail service's rows: the queue (`queue`: services, messages, errors, counters, events) and
what comes back after delivery (`bounces`: suppressions, complaints, unattributed bounces), the
customers' webhooks (`webhooks`: endpoints, deliveries, attempts), the DKIM keys (`signing`)."""

from mailqueue.choices import (
    Action,
    ActorKind,
    BlockReason,
    BounceProblem,
    Door,
    ErrorKind,
    MessageStatus,
    RecipientStatus,
    State,
    WebhookDeliveryStatus,
    WebhookEvent,
)
from mailqueue.models.bounces import Complaint, Suppression, UnattributedBounce
from mailqueue.models.queue import (
    DailyCounter,
    DeliveryError,
    Event,
    MailService,
    Message,
    RelayHandoff,
    held_fields,
    queued_fields,
)
from mailqueue.models.signing import DkimKey
from mailqueue.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Action",
    "ActorKind",
    "BlockReason",
    "BounceProblem",
    "Complaint",
    "DailyCounter",
    "DeliveryError",
    "DkimKey",
    "Door",
    "ErrorKind",
    "Event",
    "MailService",
    "Message",
    "MessageStatus",
    "RecipientStatus",
    "RelayHandoff",
    "State",
    "Suppression",
    "UnattributedBounce",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "WebhookEvent",
    "held_fields",
    "queued_fields",
]
