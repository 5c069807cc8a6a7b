"""ALB-shaped tokens for tests: ES256 over base64url segments *with* padding, as the ALB writes them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.core.alb_token import AlbSettings

REGION = "eu-west-1"
ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/edge-alb/50dc6c495c0c9188"
TENANT = "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
CLIENT = "33333333-4444-4555-8666-777777777777"
KID = "c2f80c8b-c05c-4068-af14-17299f7896b1"
NOW = 1_800_000_000


def padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def unpadded(data: bytes) -> str:
    return padded(data).rstrip("=")


def settings(**overrides: Any) -> AlbSettings:
    values: dict[str, Any] = {
        "region": REGION,
        "signer_arn": ARN,
        "issuer": ISSUER,
        "client_id": CLIENT,
        "tenant_id": TENANT,
        "leeway_seconds": 60,
    }
    values.update(overrides)
    return AlbSettings(**values)


def pem_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class AlbForge:
    """Signs ALB tokens with ``key``; every field can be overridden per token."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {
            "typ": "JWT",
            "kid": KID,
            "alg": "ES256",
            "iss": ISSUER,
            "client": CLIENT,
            "signer": ARN,
            "exp": NOW + 120,
        }
        for name, value in overrides.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def payload(self, **overrides: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "name": "Ada Lovelace",
            "family_name": "Lovelace",
            "given_name": "Ada",
            "email": "ada@example.com",
            "picture": "https://graph.microsoft.com/v1.0/me/photo/$value",
        }
        payload.update(overrides)
        return payload

    def raw_signature(self, signing_input: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def token(
        self,
        *,
        header: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
        pad: bool = True,
        signature: bytes | None = None,
    ) -> str:
        encode = padded if pad else unpadded
        h = encode(json.dumps(header if header is not None else self.header()).encode())
        p = encode(json.dumps(payload if payload is not None else self.payload()).encode())
        signing_input = f"{h}.{p}".encode("ascii")
        sig = signature if signature is not None else self.raw_signature(signing_input)
        return f"{h}.{p}.{encode(sig)}"

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()
