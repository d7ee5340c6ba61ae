"""Digests and encryption of API secrets."""

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet
from django.conf import settings


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def generate(length: int = 32) -> str:
    return secrets.token_urlsafe(length)[:length]


def _fernet() -> Fernet:
    # A dedicated key when configured; otherwise one derived from SECRET_KEY.
    key = settings.CREDENTIALS_ENCRYPTION_KEY or base64.urlsafe_b64encode(
        hashlib.sha256(("api-credentials:" + settings.SECRET_KEY).encode()).digest()
    )
    return Fernet(key)


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()
