"""The running identity provider: configuration, keys, remembered grants and the token minting."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from devidp import claims, errors
from devidp.auth_context import NO_CONDITIONS, SignInConditions
from devidp.keys import KeyRing, b64url
from devidp.model import DEFAULT_ACCESS_TOKEN_LIFETIME_RANGE, Application, DevIdpConfig, Tenant, User
from devidp.scopes import ScopeGrant
from devidp.state import Clock, GrantStore, RefreshFamily


@dataclass(frozen=True, slots=True)
class Redemption:
    """What a user grant established: whose tokens, for which scopes, under which sign-in."""

    user: User
    grant: ScopeGrant
    auth_time: int
    sid: str
    nonce: str | None = None
    family: RefreshFamily | None = None  # the refresh family being continued, if any
    public: bool = False  # a new refresh family belongs to a public client
    spa: bool = False  # ... redeemed by a single-page app
    conditions: SignInConditions = NO_CONDITIONS  # what the sign-in established for acrs and xms_cc


@dataclass(slots=True)
class Runtime:
    config: DevIdpConfig
    keys: KeyRing
    store: GrantStore
    clock: Clock = time.time
    #: Draws Entra's random default access-token lifetimes; seeded from ``[lifetimes] random_seed``.
    rng: random.Random = dataclasses.field(default_factory=random.Random)

    @property
    def base_url(self) -> str:
        return self.config.base_url()

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def now(self) -> int:
        return int(self.clock())

    def tenant(self, name: str) -> Tenant:
        tenant = self.config.tenant(name)
        if tenant is None:
            raise errors.TENANT_NOT_FOUND(tenant=name)
        return tenant

    def context(self, tenant: Tenant) -> claims.IssueContext:
        return claims.IssueContext(
            base_url=self.base_url,
            tenant=tenant,
            lifetimes=self.config.lifetimes,
            pairwise_salt=self.config.signing.pairwise_salt,
            now=self.now(),
        )

    def access_token_lifetime(self) -> int:
        fixed = self.config.lifetimes.access_token_seconds
        if fixed is not None:
            return fixed
        return self.rng.randint(*DEFAULT_ACCESS_TOKEN_LIFETIME_RANGE)

    def sign(self, payload: Mapping[str, Any], *, x5t: bool = False) -> str:
        """RS256 with ``kid``; ``x5t`` too for v1 tokens only, as Entra's v2 tokens do not carry it."""
        key = self.keys.current
        headers = {"typ": "JWT", "kid": key.kid}
        if x5t:
            headers["x5t"] = key.x5t
        return jwt.encode(dict(payload), key.private_key, algorithm="RS256", headers=headers)

    def sign_for_microsoft_api(self, payload: Mapping[str, Any], *, x5t: bool) -> str:
        """A token for a Microsoft API (Graph), in the special format Entra uses for them.

        Entra's Graph tokens carry a ``nonce`` in the header and are signed over its SHA-256 rather
        than the nonce itself, so they do not validate as a JWT: only the API they are for may read
        them. devidp does the same, so code that validates Graph tokens fails here as it would there.
        """
        nonce = secrets.token_urlsafe(32)
        key = self.keys.current
        headers: dict[str, Any] = {"typ": "JWT", "nonce": _hashed_nonce(nonce), "kid": key.kid}
        if x5t:
            headers["x5t"] = key.x5t
        signed = jwt.encode(dict(payload), key.private_key, algorithm="RS256", headers=headers)
        header_segment, rest = signed.split(".", 1)
        header = json.loads(_b64decode(header_segment))
        header["nonce"] = nonce
        return b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + rest

    # -- directory changes (admin endpoints) -------------------------------------------------------
    def replace_user(self, tenant_id: str, user: User) -> None:
        tenants = []
        for t in self.config.tenants:
            if t.id == tenant_id:
                t = dataclasses.replace(t, users=tuple(user if u.id == user.id else u for u in t.users))
            tenants.append(t)
        self.config = dataclasses.replace(self.config, tenants=tuple(tenants))

    # -- token responses ---------------------------------------------------------------------------
    def user_token_response(
        self,
        tenant: Tenant,
        client: Application,
        redemption: Redemption,
        *,
        confidential: bool,
        want_client_info: bool,
        ipaddr: str,
    ) -> tuple[dict[str, Any], RefreshFamily | None]:
        """Mint access (and ID, refresh) tokens for a user; returns the body and the refresh family."""
        user, grant, auth_time, sid = redemption.user, redemption.grant, redemption.auth_time, redemption.sid
        family = redemption.family
        ctx = self.context(tenant)
        lifetime = self.access_token_lifetime()
        access = claims.user_access_token(
            ctx,
            user,
            client,
            grant,
            confidential=confidential,
            auth_time=auth_time,
            sid=sid,
            lifetime=lifetime,
            ipaddr=ipaddr,
            conditions=redemption.conditions,
        )
        v1 = access["ver"] == "1.0"
        signed = (
            self.sign_for_microsoft_api(access, x5t=v1)
            if grant.resource is None
            else self.sign(access, x5t=v1)
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": grant.qualified(),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": signed,
        }
        if "offline_access" in grant.oidc:
            if family is None:
                family = RefreshFamily(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant.id,
                    client_id=client.app_id,
                    user_id=user.id,
                    grant=grant,
                    auth_time=auth_time,
                    sid=sid,
                    public=redemption.public,
                    spa=redemption.spa,
                    conditions=redemption.conditions,
                )
                self.store.new_family(family)
            body["refresh_token"] = self.store.add_refresh_token(
                family.id, self.config.lifetimes.refresh_token_seconds
            )
        if "openid" in grant.oidc:
            body["id_token"] = self.sign(
                claims.id_token(
                    ctx, user, client, grant, nonce=redemption.nonce, auth_time=auth_time, sid=sid
                )
            )
        if want_client_info:
            body["client_info"] = claims.client_info(user, tenant.id)
        return body, family

    def app_token_response(
        self,
        tenant: Tenant,
        client: Application,
        resource: Application,
        identifier: str,
        roles: tuple[str, ...],
    ) -> dict[str, Any]:
        lifetime = self.access_token_lifetime()
        access = claims.app_access_token(
            self.context(tenant), client, resource, identifier, roles, lifetime=lifetime
        )
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.sign(access, x5t=access["ver"] == "1.0"),
        }

    def decode_own_token(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Verify a token this devidp signed (signature with a published key, RS256 only)."""
        header = jwt.get_unverified_header(token)
        key = self.keys.find(str(header.get("kid", "")))
        if key is None:
            raise jwt.InvalidTokenError("unknown kid")
        if isinstance(header.get("nonce"), str):
            # A token for a Microsoft API: its signature covers the nonce's hash (see above).
            header["nonce"] = _hashed_nonce(header["nonce"])
            token = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + token.split(".", 1)[1]
        return jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": verify_exp, "require": ["exp", "iss", "tid"]},
            leeway=30,
        )


def _hashed_nonce(nonce: str) -> str:
    return b64url(hashlib.sha256(nonce.encode("ascii")).digest())


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


RUNTIME: web.AppKey[Runtime] = web.AppKey("devidp_runtime", Runtime)
