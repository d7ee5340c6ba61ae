"""Each hosting's DKIM key (SPEC §11.2): made when the hosting is provisioned (and for older
hostings by `manage.py dkim_keys_create`), stored encrypted at rest, rotated from the portal;
the DNS records a customer publishes."""

import base64
import datetime
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hosting.encryption import encrypt
from hosting.models import Hosting
from mailqueue.models import DkimKey

TXT_CHUNK = 255  # a DNS TXT string holds at most 255 characters: longer records are split


def _selector(now: datetime.datetime) -> str:
    return f"portal{now:%Y%m}{secrets.token_hex(2)}"


def _key_new(hosting: Hosting, now: datetime.datetime) -> DkimKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=settings.DKIM_KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey.objects.create(
        hosting=hosting,
        selector=_selector(now),
        private_key_encrypted=encrypt(pem.decode("ascii")),
        public_key=base64.b64encode(public).decode("ascii"),
        created_at=now,
    )


def dkim_key_create(*, hosting: Hosting) -> DkimKey:
    """The hosting's signing key: the existing one, or a new RSA key of DKIM_KEY_BITS bits."""
    with transaction.atomic():
        current = DkimKey.objects.select_for_update().filter(hosting=hosting, retired_at__isnull=True).first()
        return current or _key_new(hosting, timezone.now())


def dkim_key_rotate(*, hosting: Hosting) -> DkimKey:
    """A new signing key at once; the old one is retired, still published for DKIM_ROTATION_DAYS."""
    now = timezone.now()
    with transaction.atomic():
        DkimKey.objects.select_for_update().filter(hosting=hosting, retired_at__isnull=True).update(retired_at=now)
        return _key_new(hosting, now)


def dkim_keys_published(*, hosting: Hosting, now: datetime.datetime | None = None) -> list[DkimKey]:
    """The keys whose records must stay in DNS: the signing one, then those retired less than
    DKIM_ROTATION_DAYS ago (`key.valid_until` set on those)."""
    now = now or timezone.now()
    since = now - datetime.timedelta(days=settings.DKIM_ROTATION_DAYS)
    keys = list(
        DkimKey.objects.filter(hosting=hosting)
        .filter(Q(retired_at__isnull=True) | Q(retired_at__gt=since))
        .order_by("retired_at", "-created_at")
    )
    for key in keys:
        key.valid_until = (
            key.retired_at + datetime.timedelta(days=settings.DKIM_ROTATION_DAYS) if key.retired_at else None
        )
    return sorted(keys, key=lambda key: key.retired_at is not None)


def dns_name(key: DkimKey, hosting: Hosting) -> str:
    return f"{key.selector}._domainkey.{hosting.service_name}"


def dns_value(key: DkimKey) -> str:
    """The TXT value (`v=DKIM1; k=rsa; p=…`), as one string."""
    return f"v=DKIM1; k=rsa; p={key.public_key}"


def dns_record(key: DkimKey, hosting: Hosting) -> str:
    """The record as a zone file writes it: the value split in quoted strings of 255 characters."""
    value = dns_value(key)
    quoted = " ".join(f'"{value[i : i + TXT_CHUNK]}"' for i in range(0, len(value), TXT_CHUNK))
    return f"{dns_name(key, hosting)}. IN TXT {quoted}"


def spf_hint(hosting: Hosting) -> str:
    return f'{hosting.service_name}. IN TXT "v=spf1 include:{settings.SPF_INCLUDE} ~all"'


def dkim_keys_missing_create(*, progress=None) -> int:
    """A key for every hosting without one (older hostings); `progress(done, total)` after each."""
    missing = Hosting.objects.exclude(dkim_keys__retired_at__isnull=True).order_by("pk")
    total = missing.count()
    for done, hosting in enumerate(missing.iterator(), start=1):
        dkim_key_create(hosting=hosting)
        if progress:
            progress(done, total)
    return total
