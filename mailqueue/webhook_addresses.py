"""Where webhooks may go (SPEC §10.4): http(s) URLs whose host resolves only to public
addresses. Loopback, private, link-local (the cloud metadata service at 169.254.169.254),
multicast, reserved and unspecified addresses are refused, against server-side request forgery,
unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES (development, tests with a local receiver). Checked when
an endpoint is saved and again before every attempt (a name may be re-pointed meanwhile)."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _


class WebhookUrlRefused(ValueError):
    """The URL cannot receive webhooks; the message says why, for the customer."""


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
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WebhookUrlRefused(_("The host name of the address cannot be resolved.")) from None
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in found}
    if any(_forbidden(address) for address in addresses):
        raise WebhookUrlRefused(
            _("The address leads to a private, local or reserved network address: webhooks go to public servers only.")
        )
