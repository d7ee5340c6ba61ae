"""What leaves the platform (SPEC §11.2): on top of the stored bytes, a DKIM signature (the
hosting's key, when its From: domain is the hosting's) and a Received: trace header (RFC 5321
§4.4) naming the door, the client's address, the authenticated hosting and the queue id (the
message's id, as the door's 250 reply gave it). Read once per delivery batch, with the
customers' languages (the texts of failures decided before the relay)."""

import datetime
import email.utils
import functools

from django.conf import settings
from django.utils import timezone

from hosting.models import Hosting
from mailqueue.dkim_signing import Signer
from mailqueue.models import Door, Message

_WITH = {Door.SMTP: "ESMTPA", Door.API: "HTTP"}  # RFC 3848 and the mail transmission types registry
_DOOR_NAMES = {Door.SMTP: "SMTP", Door.API: "API"}  # a trace header is not translated


def received_header(message: Message, service_name: str, *, zone=None) -> bytes:
    """`zone`: the time zone of the stamp (the current one by default; a batch reads it once)."""
    client = f"[{message.client_address}]" if message.client_address else "[unknown]"
    door = _DOOR_NAMES.get(message.door, message.door)
    stamp = _stamp(int(message.created_at.timestamp()), zone or timezone.get_current_timezone())
    return (
        f"Received: from {client} (authenticated as {service_name})\r\n"
        f"\tby {settings.SMTP_INGRESS_HOSTNAME} (portal {door} door) with {_WITH.get(message.door, 'ESMTPA')}"
        f" id {message.pk};\r\n\t{stamp}\r\n"
    ).encode("ascii", "replace")


@functools.lru_cache(maxsize=1024)
def _stamp(second: int, zone) -> str:
    """The RFC 5322 date of that second in `zone`: a batch's messages submitted in one second share it."""
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(second, zone))


class Outgoing:
    """The outgoing bytes of a batch's messages: one query for the hostings' names, one for their keys."""

    def __init__(self, hosting_ids):
        rows = Hosting.objects.filter(pk__in=set(hosting_ids)).values_list("pk", "service_name", "customer__language")
        self.service_names = {pk: service_name for pk, service_name, _language in rows}
        self.languages = {pk: language for pk, _service_name, language in rows}
        self.signer = Signer(self.service_names)
        self.zone = timezone.get_current_timezone()

    def language_of(self, message: Message) -> str:
        return self.languages.get(message.hosting_id) or settings.LANGUAGE_CODE

    def bytes_of(self, message: Message, raw: bytes) -> bytes:
        service_name = self.service_names.get(message.hosting_id, "")
        return received_header(message, service_name, zone=self.zone) + self.signer.sign(message.hosting_id, raw)
