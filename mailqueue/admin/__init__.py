"""Operators' admin: hostings with their mail service, messages, errors, events, and what comes
back after delivery (suppressions, complaints, unattributed bounces).

Every action asks for confirmation (with a comment or a reason), then calls the same service
functions as the portal and the API, as the operator; refused transitions are reported per
hosting while the others proceed. Support staff (view
permissions only) see everything and can change nothing.
"""

from mailqueue.admin.bounces import ComplaintAdmin, SuppressionAdmin, UnattributedBounceAdmin
from mailqueue.admin.hostings import ACT_PERMISSION, HostingAdmin, PageLink
from mailqueue.admin.records import DeliveryErrorAdmin, EventAdmin, HostingFilter, MessageAdmin, ReadOnlyAdmin

__all__ = [
    "ACT_PERMISSION",
    "ComplaintAdmin",
    "DeliveryErrorAdmin",
    "EventAdmin",
    "HostingAdmin",
    "HostingFilter",
    "MessageAdmin",
    "PageLink",
    "ReadOnlyAdmin",
    "SuppressionAdmin",
    "UnattributedBounceAdmin",
]
