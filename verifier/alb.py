"""The ALB OIDC source: the ``x-amzn-oidc-data`` header an AWS Application Load Balancer adds.

Off unless ``VERIFIER_ALB_ARN`` is set. With ALB OIDC authentication turned on, the load balancer signs
the user in itself and forwards every request with ``x-amzn-oidc-data``: a JWT signed by the ALB
(ES256, ECDSA P-256 / SHA-256) whose *header* carries ``alg``, ``kid``, ``signer`` (the ALB's ARN),
``iss`` (the identity provider), ``client`` (the client id the ALB signed in with) and ``exp``, and
whose payload is the identity provider's UserInfo answer. The verification key is a PEM published per
region at ``https://public-keys.auth.elb.<region>.amazonaws.com/<kid>``.

Why the header means anything: nginx passes client headers to ``/verify``, so a client can send its
own ``x-amzn-oidc-data``. Only the signature, checked with a key fetched from the regional endpoint
(never from the token), together with the pinned ``signer``, makes the header the ALB's word.

What it cannot do: Entra's UserInfo carries ``sub`` (a per-application pairwise id, *not* the object
id), names and e-mail, but no ``oid``, ``tid``, roles, groups or scopes. A principal from this source
therefore has no roles or scopes, and any route policy that needs them refuses it (403).

Two deliberate departures from the bearer path (:mod:`verifier.tokens`), both confined to this module:

* the ALB writes base64url *with* ``=`` padding, which RFC 7515 forbids and the strict bearer parser
  refuses. Here a segment may carry exactly the padding its length calls for; it is stripped before
  the (otherwise equally strict) decoding, and the signature is checked over the segments *as sent*,
  padding included, because that is what the ALB signed;
* the signature is JOSE's raw ``r || s`` (64 bytes), converted to DER for ``cryptography``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from cachetools import TTLCache
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from verifier.decision import Decision, OriginalRequest
from verifier.identity import Principal
from verifier.metrics import VerifierMetrics
from verifier.reasons import Reason, Rejection, TokenRejected

if TYPE_CHECKING:
    from verifier.authenticator import TokenAuthenticator

log = logging.getLogger(__name__)

ALB_HEADER = "x-amzn-oidc-data"
DEFAULT_KEY_URL_TEMPLATE = "https://public-keys.auth.elb.{region}.amazonaws.com/{kid}"
#: UserInfo with a long name and e-mail is well under 4 KiB; this bounds all parsing work.
MAX_ALB_TOKEN_BYTES = 16 * 1024
#: A P-256 public key in PEM is about 180 bytes.
MAX_KEY_BYTES = 4096
#: Order of the P-256 group: ECDSA's r and s must lie in [1, n-1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

#: A lower-case GUID: Entra's tenant and object ids, and the ALB's key ids.
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The ALB's kids are UUIDs. The kid is put into a URL, so nothing but this shape is ever accepted:
# no slash, dot, percent or query character can reach the key endpoint.
_KID = GUID
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
#: Header parameters that would let the token name its own key; keys come only from the ALB endpoint.
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
_PAYLOAD_STRINGS = ("oid", "name", "email", "preferred_username")


class AlbRejected(TokenRejected):
    """The ALB header failed validation; ``reason`` is one of the ``alb_*`` codes."""


# --- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlbSettings:
    """What an ALB token must look like, and where its keys are."""

    region: str
    #: The expected ``signer``: the ALB's ARN, exactly.
    signer_arn: str
    #: The expected ``iss``: the identity provider's issuer (for Entra the v2 issuer of the tenant).
    issuer: str
    #: The expected ``client``: the client id the ALB's OIDC action signs in with.
    client_id: str
    #: Reported as ``X-User-Tid``: UserInfo carries no tenant id.
    tenant_id: str
    key_url_template: str = DEFAULT_KEY_URL_TEMPLATE
    leeway_seconds: int = 60
    timeout_seconds: float = 2.0
    key_cache_size: int = 32
    key_ttl_seconds: float = 3600.0
    #: A kid whose fetch failed is not fetched again for this long.
    failed_kid_cooldown_seconds: float = 60.0
    #: At most this many fetches of kids not in the cache per minute, whatever the kids are.
    max_new_kids_per_minute: int = 10
    max_token_bytes: int = MAX_ALB_TOKEN_BYTES

    def key_url(self, kid: str) -> str:
        if not _KID.match(kid):  # callers check first; this keeps the URL safe on its own
            raise ValueError("kid is not a UUID")
        return self.key_url_template.format(region=self.region, kid=kid)


def _check_key_url_template(name: str, template: str, region: str, problems: list[str]) -> None:
    probe_kid = "00000000-0000-0000-0000-000000000000"
    try:
        url = template.format(region=region or "us-east-1", kid=probe_kid)
    except (KeyError, IndexError, ValueError):
        problems.append(f"{name}={template!r}: only the placeholders {{region}} and {{kid}} may appear")
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if template.count("{kid}") != 1 or probe_kid not in parts.path:
        problems.append(f"{name}={template!r}: must contain {{kid}} exactly once, in the path")
    elif parts.scheme == "https" and host:
        pass
    elif parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1"):
        pass  # a local key server in tests
    else:
        problems.append(f"{name}={template!r}: expected an https:// URL (plain http only for loopback)")
    if parts.query or parts.fragment:
        problems.append(f"{name}={template!r}: must not carry a query or fragment")


def alb_settings_from_env(
    env: Mapping[str, str], problems: list[str], *, leeway_seconds: int = 60
) -> AlbSettings | None:
    """The ALB source's settings from ``VERIFIER_ALB_*``; None (source off) unless ``VERIFIER_ALB_ARN``
    is set. When it is, every other required variable must be valid too; each problem is appended
    with its variable's name."""
    p = "VERIFIER_"
    arn = env.get(p + "ALB_ARN", "").strip()
    if not arn:
        return None
    before = len(problems)
    if not _ARN.match(arn):
        problems.append(
            f"{p}ALB_ARN={arn!r}: expected the load balancer's ARN, "
            "arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>"
        )
    region = env.get(p + "ALB_REGION", "").strip()
    if not _REGION.match(region):
        problems.append(f"{p}ALB_REGION={region!r}: expected the ALB's AWS region, e.g. eu-west-1")
    elif _ARN.match(arn) and arn.split(":")[3] != region:
        problems.append(f"{p}ALB_REGION={region!r}: differs from the region in {p}ALB_ARN")
    template = env.get(p + "ALB_KEY_URL_TEMPLATE", DEFAULT_KEY_URL_TEMPLATE).strip()
    _check_key_url_template(p + "ALB_KEY_URL_TEMPLATE", template, region, problems)
    issuer = env.get(p + "ALB_ISSUER", "").strip()
    if not issuer.startswith("https://"):
        problems.append(
            f"{p}ALB_ISSUER={issuer!r}: expected the identity provider's issuer as the ALB's OIDC action "
            "has it, e.g. https://login.microsoftonline.com/<tenant>/v2.0"
        )
    client_id = env.get(p + "ALB_CLIENT_ID", "").strip()
    if not client_id:
        problems.append(f"{p}ALB_CLIENT_ID is empty: set the client id of the ALB's OIDC action")
    tenant_id = env.get(p + "ALB_TENANT_ID", "").strip().lower()
    if not GUID.match(tenant_id):
        problems.append(f"{p}ALB_TENANT_ID={tenant_id!r}: expected the Entra tenant id (a GUID)")
    if len(problems) > before:
        return None
    return AlbSettings(
        region=region,
        signer_arn=arn,
        issuer=issuer,
        client_id=client_id,
        tenant_id=tenant_id,
        key_url_template=template,
        leeway_seconds=leeway_seconds,
    )


# --- pure validation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlbToken:
    """An ALB token whose shape and header passed; signature and payload are not checked yet."""

    kid: str
    exp: int | float
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _reject(reason: Reason, detail: str) -> AlbRejected:
    return AlbRejected(reason, detail)


def _segment(text: str, part: str) -> bytes:
    """Decode one segment: at most the padding its length calls for, then strict base64url."""
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    if padding and (padding > 2 or len(text) % 4 != 0):
        raise _reject(Reason.ALB_MALFORMED, f"the {part} has padding its length does not call for")
    # The bearer path's strict decoder. Imported here, not at the top, because verifier.settings
    # imports this module and verifier.tokens imports verifier.settings.
    from verifier.tokens import _b64decode

    try:
        return _b64decode(stripped, part)
    except TokenRejected:
        raise _reject(Reason.ALB_MALFORMED, f"the {part} is not base64url") from None


def _object(data: bytes, part: str) -> dict[str, Any]:
    from verifier.tokens import _json_object  # see _segment

    try:
        return _json_object(data, part)
    except TokenRejected:
        raise _reject(Reason.ALB_MALFORMED, f"the {part} is not a JSON object") from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_alb_token(token: str, settings: AlbSettings, now: float) -> AlbToken:
    """Parse the header value once and apply every rule that needs no key.

    Runs before any key is fetched, so a token with a foreign ``signer``, a kid that is no UUID or an
    expired ``exp`` never causes a request to the key endpoint. Raises :class:`AlbRejected`.
    """
    if len(token) > settings.max_token_bytes:
        raise _reject(Reason.ALB_MALFORMED, f"longer than {settings.max_token_bytes} bytes")
    if not token.isascii():
        raise _reject(Reason.ALB_MALFORMED, "not ASCII")
    segments = token.split(".")
    if len(segments) != 3 or not all(segments):
        raise _reject(Reason.ALB_MALFORMED, "expected three non-empty dot-separated segments")
    header = _object(_segment(segments[0], "header"), "header")
    alg = header.get("alg")
    if alg != "ES256":
        shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
        raise _reject(Reason.ALB_UNSUPPORTED_ALG, f"alg {shown!r} is not accepted; only ES256")
    for name in _FORBIDDEN_HEADERS:
        if name in header:
            raise _reject(Reason.ALB_MALFORMED, f"header parameter {name!r} is refused")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid):
        raise _reject(Reason.ALB_BAD_KID, "the header's 'kid' is not a lower-case UUID")
    if header.get("signer") != settings.signer_arn:
        raise _reject(Reason.ALB_BAD_SIGNER, "the header's 'signer' is not the configured load balancer")
    if header.get("iss") != settings.issuer:
        raise _reject(Reason.ALB_BAD_ISSUER, "the header's 'iss' is not the configured issuer")
    if header.get("client") != settings.client_id:
        raise _reject(Reason.ALB_BAD_CLIENT, "the header's 'client' is not the configured client id")
    exp = header.get("exp")
    if not _is_number(exp):
        raise _reject(Reason.ALB_MALFORMED, "the header's 'exp' is not a number")
    if exp <= now - settings.leeway_seconds:
        raise _reject(Reason.ALB_EXPIRED, f"the ALB token expired (leeway {settings.leeway_seconds}s)")
    payload = _object(_segment(segments[1], "payload"), "payload")
    signature = _segment(segments[2], "signature")
    # The ALB signed the segments as it wrote them, padding included.
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
    return AlbToken(kid=kid, exp=exp, payload=payload, signing_input=signing_input, signature=signature)


def verify_alb_signature(token: AlbToken, key: ec.EllipticCurvePublicKey) -> None:
    """ES256 over the signing input with the ALB key; raises :class:`AlbRejected` (``alb_bad_signature``)."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _reject(Reason.ALB_BAD_SIGNATURE, "the key is not a P-256 key")
    if len(token.signature) != 64:
        raise _reject(Reason.ALB_BAD_SIGNATURE, "an ES256 signature is 64 bytes (r || s)")
    r = int.from_bytes(token.signature[:32], "big")
    s = int.from_bytes(token.signature[32:], "big")
    # Checked here rather than left to the library: r = s = 0 is the "psychic signature" that broken
    # ECDSA verifiers accepted for any message, and out-of-range values are never a valid signature.
    # A high s (n/2 < s < n) is a valid ECDSA signature and is accepted: the ALB does not normalize s,
    # and nothing here uses the signature as an identifier, so its malleability is harmless.
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise _reject(Reason.ALB_BAD_SIGNATURE, "r or s is outside [1, n-1]")
    try:
        key.verify(encode_dss_signature(r, s), token.signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _reject(Reason.ALB_BAD_SIGNATURE, "the ES256 signature does not verify") from None


def alb_principal(token: AlbToken, settings: AlbSettings) -> Principal:
    """The principal of a verified ALB token.

    ``oid`` is the ``oid`` claim when the identity provider sent one, else ``sub``: Entra's UserInfo
    has only ``sub``, a pairwise id that differs from the object id bearer tokens carry. No roles,
    scopes or groups: UserInfo has none.
    """
    payload = token.payload
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _reject(Reason.ALB_MALFORMED, "the payload has no 'sub' string")
    for name in _PAYLOAD_STRINGS:
        if name in payload and not isinstance(payload[name], str):
            raise _reject(Reason.ALB_MALFORMED, f"the payload's {name!r} is not a string")
    return Principal(
        oid=payload.get("oid") or sub,
        tid=settings.tenant_id,
        principal_type="user",
        auth_source="alb",
        client_id=settings.client_id,
        name=payload.get("name", ""),
        email=payload.get("preferred_username") or payload.get("email", ""),
        expires_at=int(token.exp),
        subject=sub,
    )


def load_alb_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The ALB's key from its PEM; ValueError unless it is a P-256 public key."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not a P-256 public key")
    return key


# --- I/O: the regional key endpoint -----------------------------------------------------------------


class AlbKeyCache:
    """ALB public keys by kid: cached, fetched once per kid at a time, and rationed.

    A forged header can name any UUID as its kid (after passing the signer, issuer, client and expiry
    checks, which a forger can copy). So a kid that failed is not retried for
    ``failed_kid_cooldown_seconds``, and at most ``max_new_kids_per_minute`` uncached kids are fetched
    per minute in total; beyond that the request is refused with ``alb_keys_unavailable``.
    """

    def __init__(
        self,
        settings: AlbSettings,
        http: aiohttp.ClientSession | None = None,
        *,
        metrics: VerifierMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._http = http
        self._owns_http = http is None
        self._metrics = metrics
        self._monotonic = monotonic
        self._keys: TTLCache[str, ec.EllipticCurvePublicKey] = TTLCache(
            maxsize=settings.key_cache_size, ttl=settings.key_ttl_seconds, timer=monotonic
        )
        self._failed: TTLCache[str, bool] = TTLCache(
            maxsize=1024, ttl=settings.failed_kid_cooldown_seconds, timer=monotonic
        )
        self._inflight: dict[str, asyncio.Future[ec.EllipticCurvePublicKey]] = {}
        self._fetched_at: deque[float] = deque()
        #: Completed fetches (tests and metrics read it).
        self.fetch_count = 0

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self.settings.timeout_seconds, connect=min(1.0, self.settings.timeout_seconds)
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._http

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        if self._http is not None and self._owns_http:
            await self._http.close()
        self._http = None

    def _take_budget(self) -> bool:
        now = self._monotonic()
        while self._fetched_at and self._fetched_at[0] <= now - 60.0:
            self._fetched_at.popleft()
        if len(self._fetched_at) >= self.settings.max_new_kids_per_minute:
            return False
        self._fetched_at.append(now)
        return True

    async def get(self, kid: str) -> ec.EllipticCurvePublicKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        if kid in self._failed:
            raise _reject(Reason.ALB_KEYS_UNAVAILABLE, "the key for this kid failed recently; cooling down")
        task = self._inflight.get(kid)
        if task is None:
            if not self._take_budget():
                raise _reject(Reason.ALB_KEYS_UNAVAILABLE, "too many unknown kids; key fetches are rationed")
            task = asyncio.ensure_future(self._fetch(kid))
            self._inflight[kid] = task
            task.add_done_callback(lambda _t: self._inflight.pop(kid, None))
        # shield: one caller giving up (its request cancelled) must not cancel everyone's fetch.
        return await asyncio.shield(task)

    async def _fetch(self, kid: str) -> ec.EllipticCurvePublicKey:
        started = perf_counter()
        result = "error"
        try:
            async with self._client().get(self.settings.key_url(kid), allow_redirects=False) as response:
                body = await response.content.read(MAX_KEY_BYTES + 1)
                status = response.status
            if status != 200 or len(body) > MAX_KEY_BYTES:
                raise ValueError(f"the key endpoint answered {status}")
            key = load_alb_public_key(body)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self._failed[kid] = True
            log.warning("ALB key fetch failed: %s", type(exc).__name__, extra={"kid": kid})
            raise _reject(Reason.ALB_KEYS_UNAVAILABLE, "the ALB's public key could not be fetched") from None
        else:
            result = "ok"
            self._keys[kid] = key
            return key
        finally:
            self.fetch_count += 1
            if self._metrics is not None:
                self._metrics.record_upstream("alb_keys", result, perf_counter() - started)


# --- the credential source ---------------------------------------------------------------------------


class AlbSource:
    """``x-amzn-oidc-data`` as a credential source (``source="alb"``), consulted after bearer and session.

    Every refusal is 401 with an ``alb_*`` reason; a key that cannot be fetched is
    ``alb_keys_unavailable``, never a pass. An accepted principal still goes through the route policy.
    """

    name = "alb"

    def __init__(self, settings: AlbSettings, keys: AlbKeyCache) -> None:
        self.settings = settings
        self.keys = keys

    def present(self, request: web.Request) -> bool:
        return ALB_HEADER in request.headers

    async def decide(
        self, request: web.Request, original: OriginalRequest, tokens: TokenAuthenticator
    ) -> Decision:
        try:
            values = request.headers.getall(ALB_HEADER)
            if len(values) != 1:
                raise _reject(Reason.ALB_MALFORMED, f"exactly one {ALB_HEADER} header")
            token = check_alb_token(values[0].strip(), self.settings, tokens.clock())
            verify_alb_signature(token, await self.keys.get(token.kid))
            principal = alb_principal(token, self.settings)
            tokens.policy.check(principal, original.method, original.uri)
        except Rejection as rejection:
            return Decision.reject(rejection, source=self.name)
        return Decision.allow(principal)

    async def close(self) -> None:
        await self.keys.close()


def build_alb_source(settings: AlbSettings, *, metrics: VerifierMetrics | None = None) -> AlbSource:
    """The production ALB source; its HTTP client opens on first use inside the running loop."""
    return AlbSource(settings, AlbKeyCache(settings, metrics=metrics))
