"""What a valid e-mail address is, written once for every door, form and service."""

import functools

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# Longest address a mailbox can have (RFC 5321 path limit), as the model fields store it.
EMAIL_MAX_LENGTH = 254


def _storable_text(value: str) -> bool:
    """No control character (CR, LF, NUL…) and no lone surrogate (which no database stores)."""
    return not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or 0xD800 <= ord(char) <= 0xDFFF for char in value)


def email_address_valid(address) -> bool:
    """A single mailbox address: Django's validator, at most EMAIL_MAX_LENGTH characters, no
    control character or lone surrogate, no list separator or angle bracket."""
    if not isinstance(address, str) or len(address) > EMAIL_MAX_LENGTH:
        return False
    return _address_valid(address)


# The doors check each address twice (at RCPT and at submission), and scripts send to the same
# few addresses again and again: the answer for a string never changes.
@functools.lru_cache(maxsize=4096)
def _address_valid(address: str) -> bool:
    if any(char in address for char in "<>,;") or not _storable_text(address):
        return False
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True
