"""Step-up through nginx: deleting a project and changing settings need the sign-in to have satisfied
authentication context c1. A bearer client that declared cp1 gets Microsoft's claims challenge as is,
one that did not a 403 with its reason; the browser session (whose every sign-in declares cp1) gets
the challenge, steps up through oauth2-proxy's /oauth2/start with the claims, and the action succeeds.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import httpx
import pytest

from stack.launcher import Stack
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

CAROL = ("carol@contoso-dev.example", "carol-password")
#: base64 of {"access_token":{"acrs":{"essential":true,"value":"c1"}}}, as Microsoft's pages show it.
C1_CLAIMS = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
ADMIN_SCOPES = "{api}/user.read {api}/user.write {api}/admin"


def _scope(stack: Stack) -> str:
    return ADMIN_SCOPES.format(api=stack.topology.api_app_id_uri)


def _carol_stepped_up(stack: Stack) -> str:
    return edge_client.stepped_up_token(
        stack, *CAROL, edge_client.STEP_UP_CODES["carol"], scope=_scope(stack)
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_project(client: httpx.Client, origin: str, token: str, name: str) -> str:
    created = client.post(origin + "/api/projects", headers=_bearer(token), json={"name": name})
    assert created.status_code == 201, created.text
    return f"/api/projects/{created.json()['id']}"


def _expected_challenge(stack: Stack) -> str:
    t = stack.topology
    authorize = f"{t.devidp_origin}/{t.tenant_id}/oauth2/v2.0/authorize"
    return (
        f'Bearer realm="", authorization_uri="{authorize}", error="insufficient_claims", claims="{C1_CLAIMS}"'
    )


def test_a_bearer_client_that_declared_cp1_gets_the_exact_claims_challenge_then_steps_up(
    stack: Stack, client: httpx.Client, origin: str
) -> None:
    cp1 = edge_client.password_token(stack, *CAROL, scope=_scope(stack), claims=edge_client.CP1_CLAIMS)
    item = _new_project(client, origin, cp1, "step-up by bearer")

    challenged = client.delete(origin + item, headers=_bearer(cp1))
    assert challenged.status_code == 401
    assert challenged.headers.get_list("www-authenticate") == [_expected_challenge(stack)]
    assert challenged.json() == {
        "error": "unauthenticated",
        "reason": "insufficient_claims",
        "required": ["c1"],
    }
    decoded = json.loads(base64.b64decode(C1_CLAIMS))
    assert decoded == {"access_token": {"acrs": {"essential": True, "value": "c1"}}}
    assert client.get(origin + item, headers=_bearer(cp1)).status_code == 200

    # What MSAL does with the challenge: an interactive sign-in with those claims (devidp's step-up
    # page stands in for MFA), then the same call with the new token.
    stepped_up = edge_client.stepped_up_token(
        stack, *CAROL, edge_client.STEP_UP_CODES["carol"], scope=_scope(stack)
    )
    deleted = client.delete(origin + item, headers=_bearer(stepped_up))
    assert (deleted.status_code, deleted.content) == (204, b""), deleted.text
    assert client.get(origin + item, headers=_bearer(stepped_up)).status_code == 404


def test_a_bearer_client_without_cp1_gets_a_plain_403_with_its_reason(
    stack: Stack, client: httpx.Client, origin: str
) -> None:
    plain = edge_client.password_token(stack, *CAROL, scope=_scope(stack))
    item = _new_project(client, origin, plain, "step-up refused")
    refused = client.delete(origin + item, headers=_bearer(plain))
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "reason": "auth_context_required", "required": ["c1"]}
    assert "www-authenticate" not in refused.headers
    assert client.get(origin + item, headers=_bearer(plain)).status_code == 200

    settings = {"read_only": False, "max_projects_per_owner": 1000, "banner": "never saved"}
    changed = client.put(origin + "/api/admin/settings", headers=_bearer(plain), json=settings)
    assert (changed.status_code, changed.json()["reason"]) == (403, "auth_context_required")
    assert (
        client.get(origin + "/api/admin/settings", headers=_bearer(plain)).json()["banner"] != "never saved"
    )


def test_an_admin_session_gets_the_challenge_steps_up_and_then_deletes_and_changes_settings(
    stack: Stack, origin: str
) -> None:
    with edge_client.sign_in(stack, *CAROL) as carol:
        session = carol.client
        token = edge_client.stepped_up_token(
            stack, *CAROL, edge_client.STEP_UP_CODES["carol"], scope=_scope(stack)
        )
        item = _new_project(session, origin, token, "step-up by session")

        def write(method: str, path: str, body: object = None) -> httpx.Response:
            me = session.get(origin + "/api/me")
            headers = {
                "X-CSRF-Token": me.headers["x-csrf-token"],
                "Origin": origin,
                "Sec-Fetch-Site": "same-origin",
            }
            return session.request(method, origin + path, headers=headers, json=body)

        challenged = write("DELETE", item)
        assert challenged.status_code == 401
        assert challenged.headers.get_list("www-authenticate") == [_expected_challenge(stack)]
        assert challenged.json()["reason"] == "insufficient_claims"
        # The person is still signed in: the challenge is not a sign-out.
        assert session.get(origin + "/api/me").status_code == 200
        assert session.get(origin + item).status_code == 200

        hops = edge_client.step_up_session(session, origin, edge_client.STEP_UP_CODES["carol"])
        assert (hops[-1].status, hops[-1].url) == (200, origin + "/"), [(h.status, h.url) for h in hops]
        assert any(
            c.startswith(stack.topology.session_cookie_name + "=") for h in hops for c in h.set_cookies
        ), "the step-up sign-in makes a new session"

        deleted = write("DELETE", item)
        assert deleted.status_code == 204, deleted.text
        assert session.get(origin + item).status_code == 404
        settings = {"read_only": False, "max_projects_per_owner": 1000, "banner": "after step-up"}
        changed = write("PUT", "/api/admin/settings", settings)
        assert changed.status_code == 200, changed.text
        assert changed.json()["banner"] == "after step-up"


def test_oauth2_proxy_passes_only_the_step_up_claims_shape_on_to_the_provider(
    stack: Stack, origin: str
) -> None:
    def claims_sent(claims: str | None) -> str:
        query = {"rd": "/"} if claims is None else {"rd": "/", "claims": claims}
        with edge_client.new_client(stack) as fresh:
            start = fresh.get(f"{origin}/oauth2/start?{urlencode(query)}")
        assert start.status_code == 302, start.text
        assert start.headers["location"].startswith(stack.topology.devidp_origin)
        return edge_client.query_of(start.headers["location"])["claims"]

    assert claims_sent(None) == edge_client.CP1_CLAIMS
    assert claims_sent(edge_client.step_up_claims("c1")) == edge_client.step_up_claims("c1")
    assert claims_sent(edge_client.step_up_claims("c42")) == edge_client.step_up_claims("c42")
    for forged in (
        edge_client.step_up_claims("c100"),
        edge_client.step_up_claims("c01"),
        '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}',  # drops cp1
        '{"id_token":{"email":null},"access_token":{"xms_cc":{"values":["cp1"]}}}',
        edge_client.step_up_claims("c1") + " ",
    ):
        assert claims_sent(forged) == edge_client.CP1_CLAIMS, forged
