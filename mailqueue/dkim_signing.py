"""DKIM signing at delivery (SPEC §11.2): rsa-sha256, relaxed/relaxed, the usual headers, with the
hosting's key when the From: domain is the hosting's domain or one of its subdomains.

dkimpy canonicalises and writes the header; its RSA is pure Python (about 6 ms for a 2048-bit
signature here), so the RSASSA-PKCS1-v1_5 step runs through OpenSSL (`cryptography`, well under
a millisecond) instead — the same bytes: verification with dkimpy's own arithmetic checks it in
the tests."""

import email.utils
import functools
from email.parser import BytesHeaderParser
from email.policy import compat32

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from django.db.models import Q

from hosting.encryption import decrypt
from mailqueue.models import DkimKey

SIGNED_HEADERS = [
    b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to", b"cc",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"in-reply-to", b"references",
    b"list-unsubscribe", b"list-unsubscribe-post",
]  # fmt: skip


@functools.lru_cache(maxsize=256)
def _openssl_key(modulus: int, public: int, private: int, p: int, q: int, dp: int, dq: int, qi: int):
    numbers = rsa.RSAPrivateNumbers(p, q, private, dp, dq, qi, rsa.RSAPublicNumbers(public, modulus))
    return numbers.private_key()


def _rsassa_sign(hash_object, private_key: dict) -> bytes:
    key = _openssl_key(
        private_key["modulus"],
        private_key["publicExponent"],
        private_key["privateExponent"],
        private_key["prime1"],
        private_key["prime2"],
        private_key["exponent1"],
        private_key["exponent2"],
        private_key["coefficient"],
    )
    algorithm = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[hash_object.name]  # noqa: S303 (DKIM's rsa-sha1)
    return key.sign(hash_object.digest(), padding.PKCS1v15(), Prehashed(algorithm))


dkim.RSASSA_PKCS1_v1_5_sign = _rsassa_sign  # used by dkim.DKIM.gen_header
# dkimpy parses the PEM key (pure Python, ~0.2 ms) at every signature: once per key is enough.
dkim.parse_pem_private_key = functools.lru_cache(maxsize=256)(dkim.parse_pem_private_key)


def from_domain(raw: bytes) -> str:
    """The domain of the (first) From: address, lower case; "" when there is none."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)
    addresses = email.utils.getaddresses([str(value) for value in headers.get_all("From", [])])
    address = next((address for _name, address in addresses if "@" in address), "")
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def _header_names(raw: bytes):
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t") and b":" in line:
            yield line.split(b":", 1)[0].strip(), None


def domain_is_hostings(domain: str, service_name: str) -> bool:
    return domain == service_name or domain.endswith("." + service_name)


class Signer:
    """The signing keys of one delivery batch's hostings, read and decrypted once."""

    def __init__(self, hostings: dict[int, str]):
        self.service_names = hostings
        rows = DkimKey.objects.filter(Q(retired_at__isnull=True), hosting_id__in=list(hostings)).values_list(
            "hosting_id", "selector", "private_key_encrypted"
        )
        self.keys = {hosting_id: (selector, encrypted) for hosting_id, selector, encrypted in rows}
        self._pem: dict[int, bytes] = {}

    def sign(self, hosting_id: int, raw: bytes) -> bytes:
        """`raw` with a DKIM-Signature on top when the hosting has a key and its From: domain
        is the hosting's; `raw` unchanged otherwise."""
        if hosting_id not in self.keys:
            return raw
        service_name = self.service_names[hosting_id]
        if not domain_is_hostings(from_domain(raw), service_name):
            return raw
        selector, encrypted = self.keys[hosting_id]
        if hosting_id not in self._pem:
            self._pem[hosting_id] = decrypt(encrypted).encode("ascii")
        present = {name.lower() for name, _value in _header_names(raw)}
        signature = dkim.sign(
            raw,
            selector.encode("ascii"),
            service_name.encode("ascii"),
            self._pem[hosting_id],
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name for name in SIGNED_HEADERS if name in present],
        )
        return signature + raw
