"""Digests and encryption of API secrets (encryption at rest: `hosting.encryption`)."""

import hashlib
import secrets

from hosting.encryption import decrypt, encrypt

__all__ = ["decrypt", "digest", "encrypt", "generate"]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def generate(length: int = 32) -> str:
    return secrets.token_urlsafe(length)[:length]
