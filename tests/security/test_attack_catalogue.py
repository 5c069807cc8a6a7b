"""The attack catalogue, through the real aiohttp app over HTTP with a local JWKS server, twice:
against the verifier directly, and through the real nginx edge (nginx/edge.conf.template) in front
of it and the real FastAPI app.

Every case asserts the status, the RFC 6750 challenge naming the reason code, the JSON body, and
that no identity header leaked into the refusal. Where nginx answers differently (it refuses a
repeated Authorization header and oversized headers itself), each path has its own test.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tests.support.token_forge import (
    API_APP_ID_URI,
    API_CLIENT_ID,
    DROP,
    TENANT_A,
    TENANT_B,
    JwksServer,
    SigningKey,
    TokenForge,
    b64json,
    b64url,
)
from verifier.core.identity import IDENTITY_HEADERS
from verifier.sources.access_token import token_digest

from .conftest import Target


async def assert_refused(
    target: Target,
    headers: dict[str, str] | list[tuple[str, str]],
    reason: str,
    *,
    status: int = 401,
    error: str = "invalid_token",
) -> None:
    header_list = list(headers.items()) if isinstance(headers, dict) else headers
    challenge = f'Bearer realm="api", error="{error}", error_description="{reason}"'
    decisions_before = target.decisions(reason)
    async with target.request(header_list) as response:
        raw = await response.read()
        assert response.status == status, raw
        assert response.headers["WWW-Authenticate"] == challenge
        for name in IDENTITY_HEADERS:
            assert name not in response.headers
        if target.kind == "verifier":
            # The reason in a header and no body, so nginx keeps the connection.
            assert response.headers["X-Auth-Reason"] == reason
            assert raw == b""
        else:
            body = json.loads(raw)
            # nginx's own JSON body, carrying the verifier's reason and RFC 6750 error.
            word = "unauthorized" if status == 401 else "forbidden"
            assert (body["error"], body["bearer_error"], body["reason"]) == (word, error, reason), body
    # The verifier made this decision (nginx did not answer on its own).
    assert target.decisions(reason) == decisions_before + 1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def self_signed_certificate(key: SigningKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private_key, hashes.SHA256())
    )

    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


async def test_valid_token_is_the_control_case_and_passes(target, forge):
    token = forge.mint()
    if target.kind == "verifier":
        async with target.request(list(bearer(token).items())) as response:
            assert response.status == 200
            assert response.headers["X-User-Tid"] == TENANT_A
    else:
        # Through nginx to the real API, which checks the verifier's signature over the identity.
        async with target.request(list(bearer(token).items()), uri="/api/me") as response:
            assert response.status == 200, await response.text()
            me = await response.json()
            assert (me["tid"], me["auth_source"]) == (TENANT_A, "bearer")


async def test_alg_none_is_refused_with_unsupported_alg(target, forge):
    token = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(forge.user_claims())}."
    await assert_refused(target, bearer(token), "unsupported_alg")


async def test_hs256_signed_with_the_rsa_public_key_as_secret_is_refused_with_unsupported_alg(
    target, forge, key_a
):
    pem = key_a.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': key_a.kid})}.{b64json(forge.user_claims())}"
    )
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    await assert_refused(target, bearer(f"{signing_input}.{b64url(mac)}"), "unsupported_alg")


@pytest.mark.parametrize(
    "kid", ["../../../../etc/passwd", "' OR '1'='1' --", "tenant-a-key-1'; DROP TABLE keys;--", "%2e%2e%2f"]
)
async def test_kid_with_path_traversal_or_sql_is_refused_with_unknown_kid_and_no_fetch(
    target, forge, jwks_server: JwksServer, kid
):
    fetches = jwks_server.jwks_fetches
    await assert_refused(target, bearer(forge.mint(header=forge.header(kid=kid))), "unknown_kid")
    assert jwks_server.jwks_fetches == fetches  # inside the refetch cooldown: no fetch at all


@pytest.mark.parametrize("name", ["jku", "x5u"])
async def test_key_url_header_pointing_at_an_attackers_key_is_refused_with_forbidden_header(
    target, forge, attacker_key, name
):
    header = forge.header(kid=attacker_key.kid, **{name: "https://attacker.example/jwks.json"})
    await assert_refused(target, bearer(forge.mint(header=header, key=attacker_key)), "forbidden_header")


async def test_embedded_jwk_header_with_an_attackers_key_is_refused_with_forbidden_header(
    target, forge, attacker_key
):
    header = forge.header(kid=attacker_key.kid, jwk=attacker_key.jwk())
    await assert_refused(target, bearer(forge.mint(header=header, key=attacker_key)), "forbidden_header")


async def test_embedded_x5c_header_with_an_attackers_certificate_is_refused_with_forbidden_header(
    target, forge, attacker_key
):
    header = forge.header(kid=attacker_key.kid, x5c=[self_signed_certificate(attacker_key)])
    await assert_refused(target, bearer(forge.mint(header=header, key=attacker_key)), "forbidden_header")


async def test_crit_header_is_refused_with_crit_not_supported(target, forge):
    token = forge.mint(header=forge.header(crit=["b64"], b64=False))
    await assert_refused(target, bearer(token), "crit_not_supported")


async def test_expired_token_is_refused_with_expired(target, forge):
    now = int(time.time())
    token = forge.mint(forge.user_claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    await assert_refused(target, bearer(token), "expired")


async def test_token_with_nbf_in_the_future_is_refused_with_not_yet_valid(target, forge):
    token = forge.mint(forge.user_claims(nbf=int(time.time()) + 600))
    await assert_refused(target, bearer(token), "not_yet_valid")


async def test_token_without_exp_is_refused_with_missing_claim(target, forge):
    await assert_refused(target, bearer(forge.mint(forge.user_claims(exp=DROP))), "missing_claim")


async def test_wrong_audience_is_refused_with_bad_audience(target, forge):
    await assert_refused(target, bearer(forge.mint(forge.user_claims(aud="api://other-api"))), "bad_audience")


async def test_wrong_issuer_is_refused_with_bad_issuer(target, forge):
    token = forge.mint(forge.user_claims(iss=f"https://login.attacker.example/{TENANT_A}/v2.0"))
    await assert_refused(target, bearer(token), "bad_issuer")


async def test_token_of_a_tenant_not_allowed_is_refused_with_tenant_not_allowed(target, jwks_server, key_b):
    other = TokenForge(key_b, authority=jwks_server.base_url, tenant_id=TENANT_B)
    await assert_refused(target, bearer(other.mint()), "tenant_not_allowed")


async def test_audience_list_holding_ours_is_refused_with_audience_list(target, forge):
    token = forge.mint(forge.user_claims(aud=[API_APP_ID_URI, API_CLIENT_ID]))
    await assert_refused(target, bearer(token), "audience_list")


async def test_exp_as_a_string_is_refused_with_bad_claim_type(target, forge):
    token = forge.mint(forge.user_claims(exp=str(int(time.time()) + 3600)))
    await assert_refused(target, bearer(token), "bad_claim_type")


async def test_id_token_is_refused_with_id_token(target, forge):
    # An Entra v2 ID token for our own client id: no scp, no azp, a nonce.
    claims = forge.user_claims(
        aud=API_CLIENT_ID, nonce="abc", scp=DROP, roles=DROP, azp=DROP, azpacr=DROP, idtyp=DROP
    )
    await assert_refused(target, bearer(forge.mint(claims)), "id_token")


async def test_token_with_neither_scp_nor_roles_is_refused_with_no_scp_or_roles(target, forge):
    await assert_refused(
        target, bearer(forge.mint(forge.user_claims(scp=DROP, roles=DROP))), "no_scp_or_roles"
    )


async def test_issuer_of_one_tenant_with_tid_of_another_is_refused_with_tenant_mismatch(
    start_target, forge, jwks_server
):
    both_tenants = await start_target(tenants=(TENANT_A, TENANT_B))
    token = forge.mint(forge.user_claims(iss=jwks_server.issuer(TENANT_B)))
    await assert_refused(both_tenants, bearer(token), "tenant_mismatch")


async def test_token_signed_by_an_unknown_key_is_refused_with_unknown_kid(target, forge, attacker_key):
    await assert_refused(target, bearer(forge.mint(key=attacker_key)), "unknown_kid")


async def test_token_signed_by_an_unknown_key_under_a_known_kid_is_refused_with_bad_signature(
    target, forge, key_a, attacker_key
):
    token = forge.mint(header=forge.header(kid=key_a.kid), key=attacker_key)
    await assert_refused(target, bearer(token), "bad_signature")


async def test_jwe_with_five_segments_is_refused_with_jwe_not_supported(target):
    token = ".".join([b64json({"alg": "RSA-OAEP-256", "enc": "A256GCM"}), "ZW5j", "aXY", "Y2lwaGVy", "dGFn"])
    await assert_refused(target, bearer(token), "jwe_not_supported")


async def test_one_mib_token_is_refused_on_length_alone_with_token_too_large(verifier_only):
    target = verifier_only
    registry = target.app_state.metrics.registry

    def cache_lookups() -> float:
        return sum(
            registry.get_sample_value("verifier_token_cache_total", {"result": result}) or 0.0
            for result in ("hit", "miss")
        )

    before = cache_lookups()
    await assert_refused(target, bearer("a" * (1024 * 1024)), "token_too_large")
    # Refused before the token is hashed for the cache lookup (or parsed): no lookup was counted.
    # A short token, for contrast, is hashed and looked up (then refused as malformed).
    assert cache_lookups() == before
    async with target.request(list(bearer("a" * 100).items())) as response:
        assert response.status == 401
    assert cache_lookups() == before + 1


async def test_through_nginx_a_token_too_large_for_its_header_buffers_is_refused_by_nginx(nginx_only):
    """nginx's header buffers (32 KiB a line) end a 1 MiB header before the verifier is asked; the
    edge answers 431 (RFC 6585) in its JSON shape rather than nginx's own 400 page."""
    async with nginx_only.request(list(bearer("a" * (1024 * 1024)).items())) as response:
        assert response.status == 431
        assert (await response.json())["reason"] == "request_headers_too_large"
        for name in IDENTITY_HEADERS:
            assert name not in response.headers
    assert nginx_only.decisions("token_too_large") == 0


async def test_through_nginx_a_token_over_the_verifiers_limit_is_refused_with_token_too_large(nginx_only):
    # 20 KiB: fits nginx's buffers, exceeds the verifier's 16 KiB limit.
    await assert_refused(nginx_only, bearer("a" * (20 * 1024)), "token_too_large")


async def test_bad_base64_is_refused_with_bad_base64(target, forge):
    _, payload, signature = forge.mint().split(".")
    await assert_refused(target, bearer(f"eyJhbGciOiJSUzI1NiJ9!.{payload}.{signature}"), "bad_base64")


async def test_bad_json_is_refused_with_bad_json(target, forge):
    _, payload, signature = forge.mint().split(".")
    await assert_refused(target, bearer(f"{b64url(b'{alg:RS256}')}.{payload}.{signature}"), "bad_json")


async def test_two_authorization_headers_are_refused_by_the_verifier_with_multiple_authorization_headers(
    verifier_only, forge
):
    token = forge.mint()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    await assert_refused(verifier_only, headers, "multiple_authorization_headers", error="invalid_request")


async def test_two_authorization_headers_are_refused_by_nginx_with_400_before_the_verifier(nginx_only, forge):
    """nginx treats Authorization as a header that may appear once and answers 400 on a repeat, so
    the verifier never sees the request (and no token from it is looked at)."""
    token = forge.mint()
    for second in (f"Bearer {token}", "Basic YWxpY2U6cGFzc3dvcmQ="):
        headers = [("Authorization", f"Bearer {token}"), ("Authorization", second)]
        async with nginx_only.request(headers, uri="/api/me") as response:
            assert response.status == 400
            for name in IDENTITY_HEADERS:
                assert name not in response.headers
    assert nginx_only.all_decisions() == 0


@pytest.mark.parametrize(
    "value", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Digest username=alice", "Token abc", "Bearertoken"]
)
async def test_other_schemes_are_refused_with_unsupported_scheme(target, value):
    await assert_refused(target, {"Authorization": value}, "unsupported_scheme", error="invalid_request")


async def test_bearer_scheme_without_a_token_is_refused_with_malformed_token(target):
    await assert_refused(target, {"Authorization": "Bearer "}, "malformed_token")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_bearer_scheme_is_case_insensitive(target, forge, scheme):
    async with target.request([("Authorization", f"{scheme} {forge.mint()}")], uri="/api/me") as response:
        assert response.status == 200


async def test_es256_token_with_zero_r_and_s_is_refused_with_unsupported_alg(target, forge, key_a):
    signing_input = (
        f"{b64json({'alg': 'ES256', 'typ': 'JWT', 'kid': key_a.kid})}.{b64json(forge.user_claims())}"
    )
    await assert_refused(target, bearer(f"{signing_input}.{b64url(bytes(64))}"), "unsupported_alg")


async def test_no_credentials_get_a_challenge_without_an_error_code(target):
    async with target.request([]) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
        if target.kind == "verifier":
            assert response.headers["X-Auth-Reason"] == "missing_token"
            assert await response.read() == b""
        else:
            body = await response.json()
            assert (body["error"], body["bearer_error"], body["reason"]) == (
                "unauthorized",
                "",
                "missing_token",
            )
    assert target.decisions("missing_token") == 1


async def test_refused_tokens_never_enter_the_token_cache(target, forge, attacker_key):
    cases = [
        (forge.mint(forge.user_claims(aud="api://other")), "bad_audience"),
        (forge.mint(key=attacker_key), "unknown_kid"),
        (forge.mint(forge.user_claims(exp=int(time.time()) - 3600)), "expired"),
    ]
    for token, reason in cases:
        await assert_refused(target, bearer(token), reason)
        await assert_refused(target, bearer(token), reason)  # asked twice: still refused, still uncached
    cache = target.app_state.tokens.cache
    assert [reason for token, reason in cases if cache.get(token_digest(token)) is not None] == []


def _time_wait_sockets_to(port: int) -> int:
    """Sockets on this machine in TIME_WAIT towards ``port``: one per connection the client side
    closed (here: nginx closing a connection to the verifier)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "06" and remote_port == port:
                    count += 1
    return count


async def test_through_nginx_refusals_keep_the_connection_to_the_verifier(nginx_only, forge, attacker_key):
    """nginx closes an auth_request upstream connection whose answer has a body; a refusal costing a
    new TCP connection each would let a flood of bad tokens fill the port range with TIME_WAIT."""
    port = nginx_only.verifier.server_port  # type: ignore[attr-defined]
    token = forge.mint(key=attacker_key)
    before = _time_wait_sockets_to(port)
    decided = nginx_only.all_decisions()
    for _ in range(40):
        async with nginx_only.request(list(bearer(token).items())) as response:
            await response.read()
            assert response.status == 401
    assert nginx_only.all_decisions() - decided == 40
    assert _time_wait_sockets_to(port) - before < 5
