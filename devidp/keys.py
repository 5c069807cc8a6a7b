"""Token signing keys: RSA-2048 with a self-signed certificate, published the way Entra publishes them.

Entra's JWKS entries carry ``kid``, ``x5t`` (base64url SHA-1 of the certificate's DER) and ``x5c``;
the v2 documents add ``issuer`` with the ``{tenantid}`` template. Several keys are published at once
(see :class:`KeyRing`); after a rollover the previous key stays published, so tokens signed just
before it still validate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

#: How many retired keys stay in the JWKS after rotations.
RETIRED_KEYS_KEPT = 1


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True, slots=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def x5t(self) -> str:
        # SHA-1 is what the x5t header is defined over (RFC 7515 4.1.7); it names the key, it is
        # not used for any security decision.
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return b64url(hashlib.sha1(der, usedforsecurity=False).digest())

    @property
    def kid(self) -> str:
        # Entra uses the thumbprint as the key id too.
        return self.x5t

    def jwk(self, issuer: str | None) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        jwk: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _int_b64(numbers.n),
            "e": _int_b64(numbers.e),
            "x5c": [base64.b64encode(der).decode("ascii")],
            "cloud_instance_name": "microsoftonline.com",
        }
        if issuer is not None:
            jwk["issuer"] = issuer
        return jwk

    def to_pem(self) -> bytes:
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key + self.certificate.public_bytes(serialization.Encoding.PEM)


def generate_signing_key(now: dt.datetime | None = None) -> SigningKey:
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devidp token signing")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return SigningKey(key, cert)


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Load key and certificate from ``path`` (one PEM file), creating it on first use.

    Keeping the certificate next to the key keeps ``kid``/``x5t`` stable across restarts, so tokens
    issued before a restart still validate against a JWKS fetched after it.
    """
    if path.exists():
        pem = path.read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise ValueError(f"{path}: expected an RSA private key of at least 2048 bits")
        cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----") :])
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise ValueError(f"{path}: the certificate does not belong to the private key")
        return SigningKey(key, cert)
    signing_key = generate_signing_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signing_key.to_pem())
    return signing_key


class KeyRing:
    """The signing keys Entra-style: several published, one of them signing.

    Entra publishes a key before it starts signing with it and keeps the previous one published
    after the switch, so the JWKS holds several keys and the signing key is not necessarily the
    first. Here: the announced next key (listed first), the signing key, then the retired ones.
    A rollover (scheduled every ``rotation_seconds`` of ``clock`` time, or by the admin endpoint)
    makes the announced key the signing key and announces a new one; an unannounced rollover (the
    admin endpoint's ``announced=false``, like Entra's emergency rollover) signs at once with a key
    no JWKS has shown yet, which only a validator that refetches on an unknown ``kid`` survives.
    """

    def __init__(
        self,
        current: SigningKey,
        *,
        upcoming: SigningKey | None = None,
        clock: Callable[[], float] | None = None,
        rotation_seconds: int = 0,
        key_factory: Callable[[], SigningKey] = generate_signing_key,
    ) -> None:
        self._current = current
        self._factory = key_factory
        self._upcoming = upcoming or key_factory()
        self._retired: list[SigningKey] = []
        self._clock = clock
        self._rotation_seconds = rotation_seconds
        self._next_rotation = (clock() + rotation_seconds) if clock and rotation_seconds else None

    def _roll_by_schedule(self) -> None:
        if self._next_rotation is None or self._clock is None:
            return
        while self._clock() >= self._next_rotation:
            self.rotate()
            self._next_rotation += self._rotation_seconds

    @property
    def current(self) -> SigningKey:
        self._roll_by_schedule()
        return self._current

    @property
    def upcoming(self) -> SigningKey:
        self._roll_by_schedule()
        return self._upcoming

    @property
    def published(self) -> list[SigningKey]:
        self._roll_by_schedule()
        return [self._upcoming, self._current, *self._retired]

    def rotate(self, *, announced: bool = True) -> SigningKey:
        self._retired.insert(0, self._current)
        del self._retired[RETIRED_KEYS_KEPT:]
        if announced:
            self._current, self._upcoming = self._upcoming, self._factory()
        else:
            self._current = self._factory()
        return self._current

    def find(self, kid: str) -> SigningKey | None:
        for key in self.published:
            if key.kid == kid:
                return key
        return None

    def jwks(self, issuer: str | None) -> dict[str, Any]:
        return {"keys": [k.jwk(issuer) for k in self.published]}
