"""What devidp remembers between requests: codes, refresh-token families, device codes, sessions.

In memory, by design: devidp is a development tool and a restart signing everyone out is fine.
Codes and refresh tokens are random strings handed to clients; only their SHA-256 is kept, so a
dump of this state does not hold usable credentials.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devidp.auth_context import NO_CONDITIONS, SignInConditions
from devidp.scopes import ScopeGrant

Clock = Callable[[], float]
#: How long a sign-in page can be answered.
LOGIN_PAGE_SECONDS = 900
_PRUNE_THRESHOLD = 5000


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True)
class AuthorizationCode:
    tenant_id: str
    client_id: str
    redirect_uri: str
    platform: str  # spa | web | publicClient
    grant: ScopeGrant
    user_id: str
    nonce: str | None
    code_challenge: str | None
    auth_time: int
    sid: str
    expires_at: float
    conditions: SignInConditions = NO_CONDITIONS  # acrs and xms_cc of this sign-in
    redeemed: bool = False
    family_id: str | None = None


@dataclass(slots=True)
class RefreshFamily:
    """Every refresh token descended from one sign-in; revoking the family (a reused authorization
    code, an administrator's revoke) ends them all. Using a refresh token does not revoke it."""

    id: str
    tenant_id: str
    client_id: str
    user_id: str
    grant: ScopeGrant
    auth_time: int
    sid: str
    public: bool  # issued to a public client (no secret at refresh)
    spa: bool  # issued to a SPA redirect (must be redeemed cross-origin)
    conditions: SignInConditions = NO_CONDITIONS  # kept from the sign-in, as Entra keeps its session's
    revoked: bool = False


@dataclass(slots=True)
class RefreshRecord:
    family_id: str
    expires_at: float


@dataclass(slots=True)
class DeviceAuthorization:
    tenant_id: str
    client_id: str
    grant: ScopeGrant
    user_code: str
    expires_at: float
    user_id: str | None = None
    auth_time: int = 0
    redeemed: bool = False


@dataclass(slots=True)
class SignedIn:
    """One user's sign-in to one tenant in one browser: what single sign-out ends."""

    user_id: str
    auth_time: int
    sid: str  # the session id tokens carry as ``sid``, the same for every app of this sign-in
    #: The apps issued an authorization code under this sign-in, in order: the ones whose
    #: front-channel logout URL the logout page loads.
    client_ids: list[str] = field(default_factory=list)
    #: The authentication contexts the user satisfied by stepping up during this sign-in.
    satisfied_contexts: set[str] = field(default_factory=set)

    def signed_in_to(self, client_id: str) -> None:
        if client_id not in self.client_ids:
            self.client_ids.append(client_id)


@dataclass(slots=True)
class Session:
    id: str
    expires_at: float
    tenants: dict[str, SignedIn] = field(default_factory=dict)


@dataclass(slots=True)
class LoginTransaction:
    """A sign-in page shown and not yet answered: the validated request waits here, not in the form."""

    id: str
    csrf: str
    binding: str  # the browser's sign-in binding cookie value the page was shown to
    kind: str  # "authorize" | "device" | "step_up"
    tenant_id: str
    request: Any
    expires_at: float
    error: str = ""


class GrantStore:
    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._codes: dict[str, AuthorizationCode] = {}
        self._families: dict[str, RefreshFamily] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._devices: dict[str, DeviceAuthorization] = {}
        self._user_codes: dict[str, str] = {}
        self._sessions: dict[str, Session] = {}
        self._logins: dict[str, LoginTransaction] = {}

    # -- codes -------------------------------------------------------------------------------------
    def add_code(self, code: AuthorizationCode) -> str:
        value = secrets.token_urlsafe(48)
        self._prune(self._codes)
        self._codes[digest(value)] = code
        return value

    def code(self, value: str) -> AuthorizationCode | None:
        return self._codes.get(digest(value))

    # -- refresh tokens ----------------------------------------------------------------------------
    def new_family(self, family: RefreshFamily) -> None:
        self._families[family.id] = family

    def family(self, family_id: str) -> RefreshFamily | None:
        return self._families.get(family_id)

    def add_refresh_token(self, family_id: str, lifetime: int) -> str:
        value = secrets.token_urlsafe(64)
        self._prune(self._refresh)
        self._refresh[digest(value)] = RefreshRecord(family_id, self.clock() + lifetime)
        return value

    def refresh_record(self, value: str) -> RefreshRecord | None:
        return self._refresh.get(digest(value))

    def revoke_family(self, family_id: str | None) -> None:
        family = self._families.get(family_id or "")
        if family is not None:
            family.revoked = True

    def revoke_user(self, tenant_id: str, user_id: str) -> int:
        """Revoke every refresh-token family and IdP session of a user; returns how many were live."""
        count = 0
        for family in self._families.values():
            if family.tenant_id == tenant_id and family.user_id == user_id and not family.revoked:
                family.revoked = True
                count += 1
        for session in self._sessions.values():
            signed_in = session.tenants.get(tenant_id)
            if signed_in is not None and signed_in.user_id == user_id:
                del session.tenants[tenant_id]
                count += 1
        return count

    # -- device codes ------------------------------------------------------------------------------
    def add_device(self, device: DeviceAuthorization) -> str:
        value = secrets.token_urlsafe(48)
        self._prune(self._devices)
        self._devices[digest(value)] = device
        self._user_codes[device.user_code] = digest(value)
        return value

    def device(self, device_code: str) -> DeviceAuthorization | None:
        return self._devices.get(digest(device_code))

    def device_by_user_code(self, user_code: str) -> DeviceAuthorization | None:
        key = self._user_codes.get(user_code.strip().upper().replace("-", ""))
        return self._devices.get(key) if key else None

    @staticmethod
    def new_user_code() -> str:
        # Entra's user codes are 9 letters/digits people type; avoid look-alike characters.
        alphabet = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1IL")
        return "".join(secrets.choice(alphabet) for _ in range(9))

    # -- IdP sessions ------------------------------------------------------------------------------
    def session(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(digest(session_id))
        if session is None or session.expires_at <= self.clock():
            return None
        return session

    def new_session(self, lifetime: int) -> tuple[str, Session]:
        value = secrets.token_urlsafe(32)
        self._prune(self._sessions)
        session = Session(id=digest(value), expires_at=self.clock() + lifetime)
        self._sessions[session.id] = session
        return value, session

    def end_session(self, session_id: str | None, tenant_id: str) -> SignedIn | None:
        """End the browser's sign-in to one tenant; returns it, or None when there was none."""
        session = self.session(session_id)
        return session.tenants.pop(tenant_id, None) if session is not None else None

    # -- sign-in page transactions -----------------------------------------------------------------
    def add_login(
        self, kind: str, tenant_id: str, request: Any, binding: str, lifetime: int = LOGIN_PAGE_SECONDS
    ) -> LoginTransaction:
        self._prune(self._logins)
        tx = LoginTransaction(
            id=secrets.token_urlsafe(24),
            csrf=secrets.token_urlsafe(24),
            binding=binding,
            kind=kind,
            tenant_id=tenant_id,
            request=request,
            expires_at=self.clock() + lifetime,
        )
        self._logins[tx.id] = tx
        return tx

    def login(self, tx_id: str) -> LoginTransaction | None:
        tx = self._logins.get(tx_id)
        if tx is None or tx.expires_at <= self.clock():
            return None
        return tx

    def finish_login(self, tx_id: str) -> None:
        self._logins.pop(tx_id, None)

    def _prune(self, table: dict[str, Any]) -> None:
        if len(table) < _PRUNE_THRESHOLD:
            return
        now = self.clock()
        for key in [k for k, v in table.items() if getattr(v, "expires_at", now + 1) <= now]:
            del table[key]
