"""oauth2-proxy's session cookie and Redis session record, written the way oauth2-proxy v7 writes them.

Used to put a real oauth2-proxy in front of a known session without a browser sign-in, and to give the
pure tests cookie values of the real shape. The formats follow oauth2-proxy's source:

* cookie value: ``pkg/encryption/utils.go`` ``SignedValue``: ``b64url(payload)|<unix>|b64url(HMAC-SHA256(
  cookie_secret, name + b64url(payload) + unix))``, base64 *with* padding;
* payload (Redis store): ``pkg/sessions/persistence/ticket.go`` ``encodeTicket``:
  ``v2.<raw b64url(ticket id)>.<raw b64url(16-byte secret)>``, ticket id ``<cookie name>-<32 hex>``;
* Redis value under the ticket id: AES-GCM (key: the ticket secret, 12-byte nonce prepended) over the
  MessagePack ``SessionState`` (``pkg/apis/sessions/session_state.go``, uncompressed for Redis).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def signed_value(secret: str, name: str, payload: bytes, timestamp: int) -> str:
    encoded = base64.urlsafe_b64encode(payload).decode()
    mac = hmac.new(secret.encode(), f"{name}{encoded}{timestamp}".encode(), hashlib.sha256).digest()
    return f"{encoded}|{timestamp}|{base64.urlsafe_b64encode(mac).decode()}"


def _raw_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# A MessagePack writer for the handful of types a SessionState needs; hand-written so the tests do not
# pull in a msgpack package for five encodings.
def _mp_str(text: str) -> bytes:
    data = text.encode()
    if len(data) < 32:
        return bytes([0xA0 | len(data)]) + data
    if len(data) < 256:
        return b"\xd9" + bytes([len(data)]) + data
    return b"\xda" + struct.pack(">H", len(data)) + data


def _mp_timestamp(unix: int) -> bytes:
    return b"\xd6\xff" + struct.pack(">I", unix)  # msgpack timestamp 32 (ext type -1)


def session_state(
    *,
    created_at: int,
    expires_on: int,
    access_token: str,
    refresh_token: str = "",
    id_token: str = "",
    email: str = "alice@contoso-dev.example",
    user: str = "alice",
) -> bytes:
    fields: list[tuple[str, bytes]] = [
        ("ca", _mp_timestamp(created_at)),
        ("eo", _mp_timestamp(expires_on)),
        ("at", _mp_str(access_token)),
        ("e", _mp_str(email)),
        ("u", _mp_str(user)),
    ]
    if refresh_token:
        fields.append(("rt", _mp_str(refresh_token)))
    if id_token:
        fields.append(("it", _mp_str(id_token)))
    return bytes([0x80 | len(fields)]) + b"".join(_mp_str(k) + v for k, v in fields)


@dataclass(frozen=True)
class Ticket:
    cookie_name: str
    ticket_id: str
    secret: bytes

    @classmethod
    def new(cls, cookie_name: str) -> Ticket:
        return cls(cookie_name, f"{cookie_name}-{os.urandom(16).hex()}", os.urandom(16))

    def payload(self) -> bytes:
        return f"v2.{_raw_b64(self.ticket_id.encode())}.{_raw_b64(self.secret)}".encode()

    def cookie_value(self, cookie_secret: str, timestamp: int) -> str:
        return signed_value(cookie_secret, self.cookie_name, self.payload(), timestamp)

    def encrypt(self, state: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.secret).encrypt(nonce, state, None)
