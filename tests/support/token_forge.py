"""A token forge and a local OIDC discovery + JWKS server, for tests and benchmarks only.

Lives under tests/: the verifier never imports it. It mints Entra-shaped access tokens with keys
generated on the spot and serves their JWKS on 127.0.0.1, so tests exercise the real validation path
without a network or an identity provider. Nothing here is trusted by the verifier unless a test configures it
as the authority.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

from verifier.core.access_tokens import ValidationSettings
from verifier.core.jwk import KeySet, tenant_keys_from_jwks
from verifier.core.policy import RoutePolicy
from verifier.service.settings import VerifierSettings

TENANT_A = "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
TENANT_B = "0b6c7d8e-9f01-4a23-b456-789abcdef012"
API_CLIENT_ID = "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"
API_APP_ID_URI = f"api://{API_CLIENT_ID}"
SPA_CLIENT_ID = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
DAEMON_CLIENT_ID = "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70"
BFF_CLIENT_ID = "b1f2a3c4-5d6e-4f70-8a91-b2c3d4e5f607"
V2_KEY_ISSUER = "{authority}/{{tenantid}}/v2.0"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode_json(segment: str) -> dict[str, Any]:
    """A JWT segment's JSON object (no checks: for tokens a test made itself)."""
    decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded if isinstance(decoded, dict) else {}


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str | None = None, bits: int = 2048) -> SigningKey:
        return cls(kid or uuid.uuid4().hex, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    def jwk(self, *, issuer: str | None = None) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.pop("key_ops", None)
        jwk.update({"kid": self.kid, "use": "sig"})
        if issuer is not None:
            jwk["issuer"] = issuer
        return jwk

    def sign(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def jwks_document(keys: list[SigningKey], *, issuer: str | None = None) -> dict[str, Any]:
    return {"keys": [k.jwk(issuer=issuer) for k in keys]}


@dataclass
class TokenForge:
    """Mints Entra-shaped access tokens signed with ``key``."""

    key: SigningKey
    authority: str = "http://127.0.0.1"
    v1_issuer_base: str = "http://127.0.0.1/sts"
    tenant_id: str = TENANT_A
    audience: str = API_APP_ID_URI
    clock: Any = time.time

    def v2_issuer(self, tenant_id: str | None = None) -> str:
        return f"{self.authority}/{tenant_id or self.tenant_id}/v2.0"

    def v1_issuer(self, tenant_id: str | None = None) -> str:
        return f"{self.v1_issuer_base}/{tenant_id or self.tenant_id}/"

    def user_claims(self, **overrides: Any) -> dict[str, Any]:
        """A delegated (user) v2 access token's claims, as Entra sends them."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": self.audience,
            "iss": self.v2_issuer(),
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + 3600,
            "aio": "E2RgYJg",
            "azp": SPA_CLIENT_ID,
            "azpacr": "0",
            "idtyp": "user",
            "name": "Alice Example",
            "oid": "11111111-1111-4111-8111-111111111111",
            "preferred_username": "alice@contoso-dev.example",
            "rh": "0.AAAA",
            "roles": ["Reader"],
            "scp": "user.read user.write",
            "sub": "q1w2e3r4t5y6u7i8o9p0-sub",
            "tid": self.tenant_id,
            "uti": uuid.uuid4().hex[:22],
            "ver": "2.0",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def app_claims(self, **overrides: Any) -> dict[str, Any]:
        """An app-only (client credentials) v2 access token's claims."""
        app_oid = "22222222-2222-4222-8222-222222222222"
        base = self.user_claims(
            azp=DAEMON_CLIENT_ID,
            idtyp="app",
            oid=app_oid,
            sub=app_oid,
            roles=["Reader", "Writer"],
            scp=_DROP,
            name=_DROP,
            preferred_username=_DROP,
        )
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not _DROP}

    def v1_user_claims(self, **overrides: Any) -> dict[str, Any]:
        claims = self.user_claims(
            iss=self.v1_issuer(),
            ver="1.0",
            appid=SPA_CLIENT_ID,
            azp=_DROP,
            azpacr=_DROP,
            upn="alice@contoso-dev.example",
            preferred_username=_DROP,
        )
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def id_token_claims(self, **overrides: Any) -> dict[str, Any]:
        """A v2 ID token's claims for the BFF app, as Entra sends them at sign-in (with ``sid``)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": BFF_CLIENT_ID,
            "iss": self.v2_issuer(),
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + 3600,
            "name": "Alice Example",
            "nonce": "n-0S6_WzA2Mj",
            "oid": "11111111-1111-4111-8111-111111111111",
            "preferred_username": "alice@contoso-dev.example",
            "sid": str(uuid.uuid4()),
            "sub": "q1w2e3r4t5y6u7i8o9p0-sub",
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def id_token(self, **overrides: Any) -> str:
        return self.mint(self.id_token_claims(**overrides))

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"typ": "JWT", "alg": "RS256", "kid": self.key.kid}
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not _DROP}

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        header: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
    ) -> str:
        """Sign ``claims`` (default: a valid user token) with RS256 under ``header``."""
        head = dict(header) if header is not None else self.header(kid=(key or self.key).kid)
        signing_input = (
            f"{b64json(head)}.{b64json(dict(claims) if claims is not None else self.user_claims())}"
        )
        signature = (key or self.key).sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: Pass as a claim or header value to leave that entry out.
_DROP: Any = _Drop()
DROP: Any = _DROP


@dataclass
class JwksServer:
    """OIDC discovery and JWKS for a few tenants on 127.0.0.1, with fetch counting and an off switch."""

    keys: dict[str, list[SigningKey]]
    #: Put Entra's v2 ``issuer`` template on each key, as the v2 JWKS does.
    key_issuer: bool = True
    available: bool = True
    #: Seconds the JWKS answer is held back (to pile concurrent requests up behind one fetch).
    delay: float = 0.0
    jwks_fetches: int = 0
    discovery_fetches: int = 0
    _runner: web.AppRunner | None = None
    base_url: str = ""

    def issuer(self, tenant_id: str) -> str:
        return f"{self.base_url}/{tenant_id}/v2.0"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tid}/v2.0/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/{tid}/discovery/v2.0/keys", self._jwks)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        tid = request.match_info["tid"]
        self.discovery_fetches += 1
        if not self.available or tid not in self.keys:
            return web.json_response({"error": "unavailable"}, status=503 if not self.available else 400)
        return web.json_response(
            {
                "issuer": self.issuer(tid),
                "jwks_uri": f"{self.base_url}/{tid}/discovery/v2.0/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        tid = request.match_info["tid"]
        self.jwks_fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.available or tid not in self.keys:
            return web.json_response({"error": "unavailable"}, status=503)
        issuer = f"{self.base_url}/{{tenantid}}/v2.0" if self.key_issuer else None
        return web.json_response(jwks_document(self.keys[tid], issuer=issuer))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = self._runner.addresses
        self.base_url = f"http://{host}:{sockets[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def key_set_for(keys: Mapping[str, list[SigningKey]], *, key_issuer: str | None = None) -> KeySet:
    """A :class:`KeySet` straight from signing keys, without a server (for pure unit tests)."""
    return KeySet(
        {tid: tenant_keys_from_jwks(tid, jwks_document(ks, issuer=key_issuer)) for tid, ks in keys.items()}
    )


def validation_settings(
    authority: str = "http://127.0.0.1",
    *,
    tenants: tuple[str, ...] = (TENANT_A,),
    audiences: tuple[str, ...] = (API_APP_ID_URI, API_CLIENT_ID),
    versions: tuple[str, ...] = ("v2",),
    v1_issuer_base: str | None = None,
    leeway: int = 60,
) -> ValidationSettings:
    return ValidationSettings(
        tenant_ids=frozenset(tenants),
        audiences=frozenset(audiences),
        authority=authority,
        v1_issuer_base=v1_issuer_base or f"{authority}/sts",
        issuer_versions=frozenset(versions),  # type: ignore[arg-type]
        leeway_seconds=leeway,
    )


#: A fixed 32-byte identity signing key for tests.
TEST_IDENTITY_KEY = bytes(range(32))


def verifier_settings(
    authority: str,
    *,
    tenants: tuple[str, ...] = (TENANT_A,),
    versions: tuple[str, ...] = ("v2",),
    leeway: int = 60,
    min_refetch_seconds: float = 60.0,
    refresh_seconds: float = 43_200.0,
    route_policy: Any = None,
    token_cache_size: int = 10_000,
) -> VerifierSettings:
    """:class:`VerifierSettings` trusting a :class:`JwksServer` at ``authority``."""

    return VerifierSettings(
        validation=validation_settings(authority, tenants=tenants, versions=versions, leeway=leeway),
        identity_key=TEST_IDENTITY_KEY,
        port=0,
        metrics_port=0,
        jwks_refresh_seconds=refresh_seconds,
        jwks_min_refetch_seconds=min_refetch_seconds,
        route_policy=route_policy if route_policy is not None else RoutePolicy(),
        token_cache_size=token_cache_size,
    )


class ManualClock:
    """A clock tests move by hand (for JWKS cooldowns)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
