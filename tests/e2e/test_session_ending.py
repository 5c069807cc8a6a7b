"""Sessions that end because someone meant it, through nginx: sign-out needs same-origin proof,
Entra's front-channel logout (devidp's logout page) ends the session by its sid, and "sign out
everywhere" ends a user's sessions by the user or an Admin."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import uuid

import httpx

from stack.launcher import Stack
from tests.e2e import edge_client

FRAME = re.compile(r'<iframe[^>]*data-front-channel-logout[^>]*src="([^"]+)"')


def _me(signed_in: edge_client.SignIn, origin: str) -> httpx.Response:
    return signed_in.client.get(origin + "/api/me")


def _csrf(signed_in: edge_client.SignIn, origin: str) -> dict[str, str]:
    me = _me(signed_in, origin)
    assert me.status_code == 200, me.text
    return {"X-CSRF-Token": me.headers["x-csrf-token"], "Origin": origin}


def _refused(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["reason"]


# --- sign-out needs same-origin proof --------------------------------------------------------------


def test_a_get_of_sign_out_asks_to_confirm_and_signs_nobody_out(stack: Stack, alice, origin) -> None:
    page = alice.client.get(origin + "/oauth2/sign_out")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/oauth2/sign_out">' in page.text
    csp = page.headers["content-security-policy"]
    assert "form-action 'self'" in csp
    # The page's one stylesheet (the error pages') is allowed by its hash, and nothing else runs.
    style = re.search(r"<style>(.*?)</style>", page.text, re.S)
    assert style is not None, page.text
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp and "script-src" not in csp, csp
    assert _me(alice, origin).status_code == 200


def test_a_post_to_sign_out_from_another_site_is_403_and_signs_nobody_out(
    stack: Stack, alice, origin
) -> None:
    for proof in (
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": origin, "Sec-Fetch-Site": "same-site"},
        {},  # no Origin at all
    ):
        refused = alice.client.post(origin + "/oauth2/sign_out", headers=proof)
        assert refused.status_code == 403, proof
        assert "sign_out_unconfirmed" in refused.text
        assert _me(alice, origin).status_code == 200, proof
    # PUT is no way in either: 405 with what the resource allows.
    put = alice.client.put(origin + "/oauth2/sign_out")
    assert (put.status_code, put.headers["allow"]) == (405, "GET, HEAD, POST")
    # The page's own button (a same-origin POST) signs out.
    signed_out = edge_client.sign_out(alice.client, origin)
    assert signed_out.status_code == 302
    assert edge_client.clears_session_cookie(signed_out, stack.topology.session_cookie_name)


# --- Entra's front-channel logout ------------------------------------------------------------------


def test_the_provider_logout_page_ends_the_session_by_sid_and_a_forged_sid_ends_nothing(
    stack: Stack, origin
) -> None:
    name = stack.topology.session_cookie_name
    with edge_client.sign_in(stack, "dave@contoso-dev.example", "dave-password") as dave:
        cookie = dave.client.cookies.get(name)
        assert _me(dave, origin).status_code == 200
        # A forged call: any site can frame-load this URL with a guessed sid. It ends nothing.
        forged = dave.client.get(origin + f"/oauth2/front_channel_logout?sid={uuid.uuid4()}")
        assert forged.status_code == 200
        assert _me(dave, origin).status_code == 200
        # Sign out at the provider (another app, My Apps, ...): its logout page frames our URL.
        logout = dave.client.get(stack.topology.sign_out_url)
        assert logout.status_code == 200, logout.text
        (frame,) = FRAME.findall(logout.text)
        frame = html.unescape(frame)
        assert frame.startswith(origin + "/oauth2/front_channel_logout?sid=")
        # The iframe carries no cookie of ours (cross-site, SameSite=Lax): a client without one.
        with edge_client.new_client(stack) as provider_frame:
            answer = provider_frame.get(frame)
            assert answer.status_code == 200
            assert (
                f"frame-ancestors {stack.topology.devidp_origin}" in answer.headers["content-security-policy"]
            )
            assert "x-frame-options" not in answer.headers
            # Safe to call twice.
            assert provider_frame.get(frame).status_code == 200
        with edge_client.new_client(stack) as replay:
            refused = replay.get(origin + "/api/me", headers={"Cookie": f"{name}={cookie}"})
            assert _refused(refused) == (401, "session_ended"), refused.text
        # Every other page of ours refuses the session too (and the browser's cookie is cleared).
        assert _me(dave, origin).status_code == 401


# --- sign out everywhere ---------------------------------------------------------------------------


def test_an_admin_ends_bobs_sessions_and_bob_ends_his_own(stack: Stack, origin) -> None:
    with (
        edge_client.sign_in(stack, "carol@contoso-dev.example", "carol-password") as carol,
        edge_client.sign_in(stack, "bob@contoso-dev.example", "bob-password") as bob,
        edge_client.sign_in(stack, "bob@contoso-dev.example", "bob-password") as bob_elsewhere,
    ):
        bob_oid = _me(bob, origin).json()["oid"]
        # bob is no Admin: he may not end anyone's sessions, his own aside.
        refused = bob.client.post(
            f"{origin}/api/users/{uuid.uuid4()}/sessions/end", headers=_csrf(bob, origin)
        )
        assert _refused(refused) == (403, "missing_role")
        # A cross-site request without the CSRF token ends nothing either.
        assert _refused(carol.client.post(f"{origin}/api/users/{bob_oid}/sessions/end")) == (
            403,
            "csrf_token_missing",
        )
        ended = carol.client.post(f"{origin}/api/users/{bob_oid}/sessions/end", headers=_csrf(carol, origin))
        # bob's two sessions here, and any another test left behind.
        assert ended.status_code == 200 and ended.json()["ended"] >= 2, ended.text
        for session in (bob, bob_elsewhere):
            assert _refused(_me(session, origin)) == (401, "session_ended")
        assert _me(carol, origin).status_code == 200
        # Signed in again, bob ends all of his own sessions, this one included.
        with edge_client.sign_in(stack, "bob@contoso-dev.example", "bob-password") as bob_again:
            mine = bob_again.client.post(origin + "/api/me/sessions/end", headers=_csrf(bob_again, origin))
            assert mine.status_code == 200 and mine.json()["ended"] >= 1, mine.text
            assert _refused(_me(bob_again, origin)) == (401, "session_ended")
