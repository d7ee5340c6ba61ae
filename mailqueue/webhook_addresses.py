"""Where webhooks may go (SPEC §10.4): http(s) URLs whose host resolves only to public
addresses. Loopback, private, link-local (the cloud metadata service at 169.254.169.254),
multicast, reserved and unspecified addresses are refused, against server-side request forgery,
unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES (development, tests with a local receiver). Checked when
an endpoint is saved and again before every attempt (a name may be re-pointed meanwhile). A host
name the resolver does not answer for within RESOLVE_TIMEOUT_SECONDS is refused: a resolver that
went silent never holds a customer's request, or a worker, for its own timeouts (10 s and more)."""

import ipaddress
import queue
import socket
import threading
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

RESOLVE_TIMEOUT_SECONDS = 3


class WebhookUrlRefused(ValueError):
    """The URL cannot receive webhooks; the message says why, for the customer."""


def _resolved(host: str, port: int) -> list:
    """`socket.getaddrinfo(host, port)`, in a thread of its own so that waiting for it can stop
    after RESOLVE_TIMEOUT_SECONDS (the thread then ends whenever the resolver answers)."""
    answer: queue.SimpleQueue = queue.SimpleQueue()

    def resolve() -> None:
        try:
            answer.put((socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), None))
        except BaseException as error:  # handed to the caller, as getaddrinfo would raise it
            answer.put((None, error))

    threading.Thread(target=resolve, name="webhook-resolve", daemon=True).start()
    try:
        found, error = answer.get(timeout=RESOLVE_TIMEOUT_SECONDS)
    except queue.Empty:
        raise WebhookUrlRefused(_("The host name of the address did not resolve in time; try again later.")) from None
    if error is not None:
        raise error
    return found


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def webhook_url_check(url: str) -> None:
    """Raise WebhookUrlRefused unless `url` may receive webhooks now."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookUrlRefused(_("The address must be an http:// or https:// URL."))
    if parts.username or parts.password:
        raise WebhookUrlRefused(_("The address must not contain a user name or password."))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookUrlRefused(_("The port of the address is not valid.")) from None
    try:
        found = _resolved(parts.hostname, port)
    except (socket.gaierror, UnicodeError):
        raise WebhookUrlRefused(_("The host name of the address cannot be resolved.")) from None
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in found}
    if any(_forbidden(address) for address in addresses):
        raise WebhookUrlRefused(
            _("The address leads to a private, local or reserved network address: webhooks go to public servers only.")
        )
