"""Secrets the platform must read back (API application secrets, webhook signing secrets) are
stored encrypted at rest with Fernet, under CREDENTIALS_ENCRYPTION_KEY or, when it is empty, a
key derived from SECRET_KEY."""

import base64
import hashlib

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    key = settings.CREDENTIALS_ENCRYPTION_KEY or base64.urlsafe_b64encode(
        hashlib.sha256(("api-credentials:" + settings.SECRET_KEY).encode()).digest()
    )
    return Fernet(key)


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()
