"""The per-message, per-recipient return path (SPEC §10.1): the envelope sender of each delivery
is `{BOUNCE_LOCAL_PART}+{token}@{BOUNCE_DOMAIN}`, so the bounce coming back names its hosting,
message and recipient; the token's HMAC (a key derived from SECRET_KEY) refuses forged ones.

Token: `{hosting id}-{message id}-{recipient index}-{mac}`, lower case letters, digits and `-`
only, since some MTAs change the case of local parts.
"""

import base64
import dataclasses
import functools
import hashlib
import hmac
import re

from django.conf import settings
from django.utils.crypto import constant_time_compare

_KEY_SALT = "mailqueue.return_path"
_MAC_CHARS = 16  # 80 bits of base32
_TOKEN = re.compile(r"^(\d{1,19})-(\d{1,19})-(\d{1,3})-([a-z2-7]{16})$")


class ForgedToken(ValueError):
    """An address of the bounce domain whose token does not carry a valid HMAC."""


@dataclasses.dataclass(frozen=True)
class ReturnPathToken:
    hosting_id: int
    message_pk: int
    index: int  # the recipient's place in Message.recipients


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    """The HMAC key derived from `secret` as `salted_hmac` derives it, once per secret (delivery
    makes one return path per recipient)."""
    return hashlib.sha256(f"{_KEY_SALT}{secret}".encode()).digest()


def _mac(payload: str, secret: str) -> str:
    # The first 10 bytes of the digest are the first 16 base32 characters: only they are encoded.
    digest = hmac.digest(_key(secret), payload.encode(), "sha256")
    return base64.b32encode(digest[: _MAC_CHARS * 5 // 8]).decode("ascii").lower()


def return_path_for(*, hosting_id: int, message_pk: int, index: int) -> str:
    return _return_path(
        hosting_id, message_pk, index, settings.BOUNCE_LOCAL_PART, settings.SECRET_KEY, settings.BOUNCE_DOMAIN
    )


@functools.lru_cache(maxsize=4)
def _return_path(hosting_id: int, message_pk: int, index: int, local_part: str, secret: str, domain: str) -> str:
    """Kept for the last few: delivery asks for a message's first return path when its commands
    go ahead (`relay_pipelining`) and again when it is sent."""
    payload = f"{hosting_id}-{message_pk}-{index}"
    return f"{local_part}+{payload}-{_mac(payload, secret)}@{domain}"


def is_bounce_address(address: str) -> bool:
    """Whether `address` is in the bounce domain (the only one the bounce door accepts)."""
    _local, at, domain = address.strip().strip("<>").rpartition("@")
    return bool(at) and domain.rstrip(".").lower() == settings.BOUNCE_DOMAIN.lower()


def return_path_parse(address: str) -> ReturnPathToken | None:
    """The token of a return path; None when `address` is not one (another local part or domain);
    ForgedToken when it looks like one but its HMAC is wrong. Keys of SECRET_KEY_FALLBACKS are
    accepted too, so bounces of mail sent before a key rotation are still attributed."""
    if not is_bounce_address(address):
        return None
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    prefix = f"{settings.BOUNCE_LOCAL_PART.lower()}+"
    if not local.startswith(prefix):
        return None
    match = _TOKEN.match(local[len(prefix) :])
    if match is None:
        raise ForgedToken(address)
    hosting_id, message_pk, index, mac = match.groups()
    payload = f"{hosting_id}-{message_pk}-{index}"
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not any(constant_time_compare(mac, _mac(payload, secret)) for secret in secrets):
        raise ForgedToken(address)
    return ReturnPathToken(hosting_id=int(hosting_id), message_pk=int(message_pk), index=int(index))
