"""Sign-in without a browser: the whole code + PKCE flow through nginx, oauth2-proxy and devidp."""

from __future__ import annotations

import pytest
import redis

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e


def test_page_without_session_redirects_to_sign_in_start(client, origin):
    r = client.get(origin + "/projects/42?tab=a")
    assert r.status_code == 302
    # The page address is query-escaped in rd, so every parameter of its query survives.
    assert r.headers["location"] == "/oauth2/start?rd=/projects/42%3Ftab%3Da"
    assert r.headers["content-type"].startswith("text/html") or r.headers.get("content-length") is not None


def test_sign_in_flow_uses_pkce_s256_and_lands_on_the_requested_page(stack: Stack):
    result = edge_client.sign_in(stack, "alice@contoso-dev.example", "alice-password", start_path="/projects")
    try:
        authorize = next(h for h in result.hops if "/oauth2/v2.0/authorize" in h.url)
        params = edge_client.query_of(authorize.url)
        assert params["code_challenge_method"] == "S256"
        assert len(params["code_challenge"]) == 43
        assert params["client_id"] == stack.topology.bff_client_id
        assert params["redirect_uri"] == stack.topology.redirect_url
        assert f"{stack.topology.api_app_id_uri}/user.read" in params["scope"].split()
        callback = next(h for h in result.hops if h.url.startswith(stack.topology.redirect_url))
        assert callback.status == 302
        assert callback.location == "/projects"
        # The SPA page itself is served once signed in.
        assert result.final.status == 200
        assert result.final.url == stack.topology.public_origin + "/projects"
    finally:
        result.client.close()


def test_session_cookie_is_secure_httponly_lax_and_holds_no_token(stack: Stack, alice):
    name = stack.topology.session_cookie_name
    attrs = edge_client.session_cookie_attributes(alice.session_set_cookie(name))
    assert attrs["secure"] is True
    assert attrs["httponly"] is True
    assert str(attrs["samesite"]).lower() == "lax"
    assert attrs["path"] == "/"
    assert "domain" not in attrs  # the __Host- prefix forbids it
    value = str(attrs["value"])
    # A Redis ticket, not a token: short, and no JWT (three base64url parts starting with eyJ).
    assert len(value) < 300
    assert "eyJ" not in value
    # The session itself lives in Redis under oauth2-proxy's key prefix.
    r = redis.Redis(host=stack.topology.bind_host, port=stack.topology.redis_port)
    try:
        keys = [k.decode() for k in r.keys("*")]
    finally:
        r.close()
    assert any(k.startswith(name) for k in keys), keys


def test_signed_in_user_gets_her_identity_from_api_me(alice, origin):
    r = alice.client.get(origin + "/api/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["oid"]
    assert me["name"] == "Alice Reader"
    assert me["email"] == "alice@contoso-dev.example"
    assert me["roles"] == ["Reader"]
    assert me["auth_source"] == "session"
    assert me["principal_type"] == "user"
    # Session responses carry the next CSRF token for the SPA.
    assert r.headers["x-csrf-token"].startswith("v1.")


def test_user_without_email_or_role_can_still_sign_in(stack: Stack, origin):
    with edge_client.signed_in(stack, "erin@contoso-dev.example", "erin-password") as erin:
        assert erin.final.status == 200
        r = erin.client.get(origin + "/api/me")
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Erin No-Role"
        assert r.json()["roles"] == []
        # ... but a Reader-only resource says 403, not 401: she is known, just not allowed.
        r = erin.client.get(origin + "/api/projects")
        assert r.status_code == 403, r.text


def test_login_flow_csrf_cookies_are_per_request_and_locked_down(stack: Stack, client, origin):
    # Two sign-ins started in parallel (two tabs) must not overwrite each other's CSRF cookie.
    names = []
    for _ in range(2):
        r = client.get(origin + "/oauth2/start?rd=/")
        assert r.status_code == 302
        (line,) = [c for c in r.headers.get_list("set-cookie") if "_csrf=" in c.split(";")[0]]
        attrs = edge_client.session_cookie_attributes(line)
        assert attrs["secure"] is True and attrs["httponly"] is True
        assert str(attrs["samesite"]).lower() == "lax"
        names.append(line.split("=", 1)[0])
    assert names[0] != names[1]
    assert all(n.startswith(stack.topology.session_cookie_name + "_") for n in names)
