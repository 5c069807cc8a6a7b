"""Sessions ended without their cookies, against a real oauth2-proxy and redis-server: by the identity
provider's front-channel logout (``/front-channel-logout?sid=``) and by "sign out everywhere" for one
user (``/sessions/end``, asked by the API with the identity the verifier signed), on every task at
once; and what the verifier records about each sign-in for it (the ID token's ``sid`` and ``oid``, the
time the callback wrote the first cookie).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.support.token_forge import TokenForge
from verifier.core.identity import Principal, signed_principal_headers
from verifier.sources.session.store import OID_INDEX_KEY_PREFIX, SESSION_START_KEY_PREFIX

from .conftest import IDENTITY_KEY, NAME, OAuth2Proxy, VerifyClient, free_port
from .test_session_verify import hearing_sign_outs, reason_of, verify

ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "33333333-3333-4333-8333-333333333333"
ADMIN = "44444444-4444-4444-8444-444444444444"


async def front_channel_logout(client: TestClient[Any, Any], query: str) -> ClientResponse:
    response = await client.get(f"/front-channel-logout{query}", headers={"X-Request-ID": "fcl-1"})
    await response.read()
    return response


def signed_request(
    caller: str, *, method: str = "POST", uri: str = "/api/me/sessions/end", roles: tuple[str, ...] = ()
) -> dict[str, str]:
    """The headers the API sends on with ``/sessions/end``: the identity the verifier signed for the
    API request, and that request's method and target."""
    principal = Principal(
        oid=caller,
        tid="7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        name="",
        email="",
        roles=roles,
        scopes=("user.write",),
        groups=(),
        groups_overage=False,
        client_id="c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f",
        principal_type="user",
        auth_source="session",
        subject=caller,
    )
    now = int(time.time())
    headers = signed_principal_headers(principal, key=IDENTITY_KEY, method=method, uri=uri, now=now)
    return {**headers, "X-Original-Method": method, "X-Original-URI": uri}


async def end_user(
    client: TestClient[Any, Any], oid: str, headers: dict[str, str], *, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    data = body if body is not None else json.dumps({"oid": oid}).encode()
    response = await client.post(
        "/sessions/end", data=data, headers={**headers, "Content-Type": "application/json"}
    )
    return response.status, await response.json()


async def two_tasks(verifier: VerifyClient, oauth2_proxy: OAuth2Proxy) -> list[TestClient[Any, Any]]:
    """Two verifier tasks that remember sessions for a minute and hear each other's sign-outs."""
    return [await hearing_sign_outs(await verifier(oauth2_proxy.url, cache_seconds=60)) for _ in range(2)]


# --- what a sign-in records ------------------------------------------------------------------------


async def test_a_sign_in_is_recorded_with_its_cookie_time_under_its_user(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    cookie = await oauth2_proxy.sign_in(age=30, access_token=forge.mint())
    assert (await verify(client, "GET", cookie)).status == 200
    (start_key,) = await oauth2_proxy.redis.keys(f"{SESSION_START_KEY_PREFIX}*")
    # The time oauth2-proxy wrote the cookie at the callback, not the first request's.
    assert int(cookie.split("|")[1]) == int(await oauth2_proxy.redis.get(start_key))
    (member,) = await oauth2_proxy.redis.smembers(OID_INDEX_KEY_PREFIX + ALICE)
    binding_hex, ticket_id = member.decode().split(" ")
    assert start_key.decode() == SESSION_START_KEY_PREFIX + binding_hex
    assert ticket_id in {key.decode() for key in await oauth2_proxy.redis.keys(f"{NAME}-*")}


async def test_a_sign_in_first_seen_while_the_store_is_down_is_503_kept_and_recorded_once_it_answers(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    # Signed in just before the verifier's Redis went away: its first request cannot be recorded.
    cookie = await oauth2_proxy.sign_in(age=20, access_token=forge.mint())
    down = await verifier(oauth2_proxy.url, f"redis://127.0.0.1:{free_port()}/0")
    refused = await verify(down, "GET", cookie)
    assert (refused.status, await reason_of(refused)) == (503, "session_backend_unavailable")
    assert "Set-Cookie" not in refused.headers, "a store fault never signs anyone out"
    assert "X-User-Oid" not in refused.headers
    assert await oauth2_proxy.redis.keys(f"{SESSION_START_KEY_PREFIX}*") == []
    # The store answers again: the same cookie works, counted from its sign-in, not from now.
    up = await verifier(oauth2_proxy.url)
    assert (await verify(up, "GET", cookie)).status == 200
    (start_key,) = await oauth2_proxy.redis.keys(f"{SESSION_START_KEY_PREFIX}*")
    assert int(await oauth2_proxy.redis.get(start_key)) == int(cookie.split("|")[1])


async def test_a_session_without_its_id_token_is_refused_500_session_token_missing(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(), id_token="")
    response = await verify(client, "GET", cookie)
    assert (response.status, await reason_of(response)) == (500, "session_token_missing")
    assert "X-User-Oid" not in response.headers


async def test_a_session_whose_id_token_does_not_verify_is_refused_with_the_reason(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    good = forge.id_token()
    tampered = good.rsplit(".", 1)[0] + "." + "A" * 342
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(), id_token=tampered)
    response = await verify(client, "GET", cookie)
    assert (response.status, await reason_of(response)) == (401, "bad_signature")
    foreign = forge.id_token(iss="https://login.example.test/another/v2.0")
    other = await oauth2_proxy.sign_in(access_token=forge.mint(), id_token=foreign)
    assert (await reason_of(await verify(client, "GET", other))) == "bad_issuer"
    # Nothing was recorded for either.
    assert await oauth2_proxy.redis.keys(f"{SESSION_START_KEY_PREFIX}*") == []


# --- front-channel logout --------------------------------------------------------------------------


async def test_front_channel_logout_ends_every_session_of_the_sid_on_every_task(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    first, second = await two_tasks(verifier, oauth2_proxy)
    entra_session = "5b0c3f1e-2a7d-4c19-9e36-8f4d2b1a0c77"
    mine = await oauth2_proxy.sign_in(access_token=forge.mint(), sid=entra_session)
    other_tab = await oauth2_proxy.sign_in(access_token=forge.mint(), sid=entra_session)
    elsewhere = await oauth2_proxy.sign_in(access_token=forge.mint())  # alice, another Entra session
    for task in (first, second):
        for cookie in (mine, other_tab, elsewhere):
            assert (await verify(task, "GET", cookie)).status == 200  # and now remembered
    answer = await front_channel_logout(first, f"?sid={entra_session}")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.headers["Cache-Control"] == "no-store"
    for task in (first, second):
        for cookie in (mine, other_tab):
            refused = await verify(task, "GET", cookie)
            assert (refused.status, await reason_of(refused)) == (401, "session_ended")
            assert refused.headers["Set-Cookie"].startswith(f"{NAME}=;")
        assert (await verify(task, "GET", elsewhere)).status == 200
    # oauth2-proxy's sessions (and their refresh tokens) are gone, not merely refused.
    assert len(await oauth2_proxy.redis.keys(f"{NAME}-*")) == 1


async def test_front_channel_logout_is_safe_to_repeat_and_an_unknown_sid_ends_nothing(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(), sid="sid-of-this-sign-in")
    assert (await verify(client, "GET", cookie)).status == 200
    # A forged call with a guessed sid, and the same call replayed: 200, nothing ended.
    for _ in range(2):
        assert (await front_channel_logout(client, "?sid=9f8e7d6c-0000-4000-8000-000000000000")).status == 200
        assert (await verify(client, "GET", cookie)).status == 200
    assert (await front_channel_logout(client, "?sid=sid-of-this-sign-in")).status == 200
    assert (await front_channel_logout(client, "?sid=sid-of-this-sign-in")).status == 200
    assert (await reason_of(await verify(client, "GET", cookie))) == "session_ended"
    # A new sign-in (Entra gives it a new sid) is not touched by a replay of the old call.
    again = await oauth2_proxy.sign_in(access_token=forge.mint(), sid="sid-of-the-next-sign-in")
    assert (await front_channel_logout(client, "?sid=sid-of-this-sign-in")).status == 200
    assert (await verify(client, "GET", again)).status == 200


async def test_front_channel_logout_ends_a_session_not_yet_seen_when_it_is_first_used(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    # Signed in, then signed out at Entra before the browser's first request reached any task.
    client = await verifier(oauth2_proxy.url)
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(), sid="raced-sign-in")
    assert (await front_channel_logout(client, "?sid=raced-sign-in")).status == 200
    refused = await verify(client, "GET", cookie)
    assert (refused.status, await reason_of(refused)) == (401, "session_ended")
    assert await oauth2_proxy.redis.keys(f"{NAME}-*") == []


async def test_front_channel_logout_without_one_well_formed_sid_is_400(
    oauth2_proxy: OAuth2Proxy, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    for query in ("", "?sid=", "?sid=a&sid=b", "?sid=has%20space", "?sid=" + "x" * 129, "?iss=x"):
        assert (await front_channel_logout(client, query)).status == 400, query


async def test_front_channel_logout_with_the_store_down_is_503_with_retry_after(
    verifier: VerifyClient, oauth2_proxy: OAuth2Proxy
) -> None:
    client = await verifier(oauth2_proxy.url, f"redis://127.0.0.1:{free_port()}/0")
    answer = await front_channel_logout(client, "?sid=some-sid")
    assert (answer.status, answer.headers["Retry-After"]) == (503, "5")


# --- sign out everywhere ---------------------------------------------------------------------------


async def test_ending_a_users_sessions_ends_all_of_theirs_on_every_task_and_no_one_elses(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    first, second = await two_tasks(verifier, oauth2_proxy)
    bob = [await oauth2_proxy.sign_in(access_token=forge.mint(forge.user_claims(oid=BOB))) for _ in range(2)]
    alice = await oauth2_proxy.sign_in(access_token=forge.mint())
    for task in (first, second):
        for cookie in (*bob, alice):
            assert (await verify(task, "GET", cookie)).status == 200
    status, body = await end_user(second, BOB, signed_request(ADMIN, uri=f"/api/users/{BOB}/sessions/end"))
    assert (status, body) == (200, {"ended": 2})
    for task in (first, second):
        for cookie in bob:
            assert (await reason_of(await verify(task, "GET", cookie))) == "session_ended"
        assert (await verify(task, "GET", alice)).status == 200
    # Again: nothing left to end.
    assert await end_user(first, BOB, signed_request(ADMIN)) == (200, {"ended": 0})


async def test_ending_a_users_sessions_ends_one_signed_in_before_but_not_yet_seen_and_not_a_later_one(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    token = forge.mint(forge.user_claims(oid=BOB))
    unseen = await oauth2_proxy.sign_in(age=5, access_token=token)
    assert await end_user(client, BOB, signed_request(BOB)) == (200, {"ended": 0})
    assert (await reason_of(await verify(client, "GET", unseen))) == "session_ended"
    await asyncio.sleep(1.1)  # a sign-in in a later second than the end
    later = await oauth2_proxy.sign_in(access_token=token)
    assert (await verify(client, "GET", later)).status == 200


async def test_ending_sessions_needs_a_fresh_identity_the_verifier_signed_for_an_unsafe_request(
    oauth2_proxy: OAuth2Proxy, forge: TokenForge, verifier: VerifyClient
) -> None:
    client = await verifier(oauth2_proxy.url)
    cookie = await oauth2_proxy.sign_in(access_token=forge.mint(forge.user_claims(oid=BOB)))
    assert (await verify(client, "GET", cookie)).status == 200
    good = signed_request(ADMIN)
    refused = {
        "missing": {k: v for k, v in good.items() if k != "X-Identity-Signature"},
        "another request's": {**good, "X-Original-URI": "/api/projects"},
        "another caller's": {**good, "X-User-Oid": BOB},
        "a safe request's": signed_request(ADMIN, method="GET"),
    }
    for case, headers in refused.items():
        status, body = await end_user(client, BOB, headers)
        assert status == 403, case
        assert body["reason"].endswith("identity_signature"), (case, body)
    for body in (b"{}", b"not json", json.dumps({"oid": "bob"}).encode(), b"[" * 2000):
        status, answer = await end_user(client, BOB, signed_request(ADMIN), body=body)
        assert (status, answer["reason"]) == (400, "bad_oid"), body[:20]
    assert (await verify(client, "GET", cookie)).status == 200
