"""The running identity provider: configuration, keys, remembered grants and the token minting."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from devidp import claims, errors
from devidp.config import Application, DevIdpConfig, Tenant, User
from devidp.keys import KeyRing
from devidp.scopes import ScopeGrant
from devidp.state import Clock, GrantStore, RefreshFamily


@dataclass(slots=True)
class Runtime:
    config: DevIdpConfig
    keys: KeyRing
    store: GrantStore
    clock: Clock = time.time

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
            raise errors.tenant_not_found(name)
        return tenant

    def context(self, tenant: Tenant) -> claims.IssueContext:
        return claims.IssueContext(
            base_url=self.base_url,
            tenant=tenant,
            lifetimes=self.config.lifetimes,
            pairwise_salt=self.config.signing.pairwise_salt,
            now=self.now(),
        )

    def sign(self, payload: Mapping[str, Any]) -> str:
        key = self.keys.current
        return jwt.encode(
            dict(payload),
            key.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": key.kid, "x5t": key.x5t},
        )

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
        user: User,
        client: Application,
        grant: ScopeGrant,
        *,
        confidential: bool,
        auth_time: int,
        sid: str,
        nonce: str | None = None,
        family: RefreshFamily | None = None,
        public: bool = False,
        spa: bool = False,
        want_client_info: bool = False,
    ) -> tuple[dict[str, Any], RefreshFamily | None]:
        """Mint access (and ID, refresh) tokens for a user; returns the body and the refresh family."""
        ctx = self.context(tenant)
        access = claims.user_access_token(
            ctx, user, client, grant, confidential=confidential, auth_time=auth_time, sid=sid
        )
        lifetime = self.config.lifetimes.access_token_seconds
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": grant.qualified(),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.sign(access),
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
                    public=public,
                    spa=spa,
                )
                self.store.new_family(family)
            body["refresh_token"] = self.store.add_refresh_token(
                family.id, self.config.lifetimes.refresh_token_seconds
            )
        if "openid" in grant.oidc:
            body["id_token"] = self.sign(
                claims.id_token(ctx, user, client, grant, nonce=nonce, auth_time=auth_time, sid=sid)
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
        access = claims.app_access_token(self.context(tenant), client, resource, identifier, roles)
        lifetime = self.config.lifetimes.access_token_seconds
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.sign(access),
        }

    def decode_own_token(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Verify a token this devidp signed (signature with a published key, RS256 only)."""
        header = jwt.get_unverified_header(token)
        key = self.keys.find(str(header.get("kid", "")))
        if key is None:
            raise jwt.InvalidTokenError("unknown kid")
        return jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": verify_exp, "require": ["exp", "iss", "tid"]},
            leeway=30,
        )


RUNTIME: web.AppKey[Runtime] = web.AppKey("devidp_runtime", Runtime)
