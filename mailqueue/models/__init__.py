"""The mail service's rows: the queue (`queue`: services, messages, errors, counters, events) and
what comes back after delivery (`bounces`: suppressions, complaints, unattributed bounces)."""

from mailqueue.choices import (
    Action,
    ActorKind,
    BlockReason,
    BounceProblem,
    ErrorKind,
    MessageStatus,
    RecipientStatus,
    State,
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

__all__ = [
    "Action",
    "ActorKind",
    "BlockReason",
    "BounceProblem",
    "Complaint",
    "DailyCounter",
    "DeliveryError",
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
    "held_fields",
    "queued_fields",
]
