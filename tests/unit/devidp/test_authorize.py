"""The browser side: authorize, the sign-in page, the IdP session, prompt, errors and logout."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    API_URI,
    BFF,
    BFF_REDIRECT,
    FRANK,
    POSTMAN,
    SPA,
    SPA_REDIRECT,
    TENANT,
    RunningIdp,
    authorize_url,
    bff_authorize_url,
    form_action,
    form_fields,
    pkce_pair,
    redirect_params,
    sign_in,
    unverified,
)

SCOPE = f"openid profile offline_access {API_URI}/user.read"


def test_sign_in_page_is_plain_escaped_html_with_csrf_token(idp: RunningIdp) -> None:
    s = idp.session()
    page = s.get(bff_authorize_url(idp, SCOPE, login_hint='"><script>x</script>'), timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "<script>x</script>" not in page.text and "&lt;script&gt;" in page.text
    fields = form_fields(page.text)
    assert set(fields) == {"tx", "csrf"}
    # The cookie binds the browser; the CSRF token is the page's own, never the cookie's value.
    assert s.cookies.get("devidp_login") and s.cookies.get("devidp_login") != fields["csrf"]
    assert "alice@contoso-dev.example" in page.text


def test_sign_in_post_without_csrf_cookie_is_refused(idp: RunningIdp) -> None:
    s = idp.session()
    page = s.get(bff_authorize_url(idp, SCOPE), timeout=10)
    attacker = idp.session()  # no cookie from the page
    r = attacker.post(
        idp.url(form_action(page.text)),
        data={**form_fields(page.text), "pick": ALICE},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 403 and "could not be verified" in r.text


def test_code_flow_returns_code_and_state_and_second_authorize_is_silent(idp: RunningIdp) -> None:
    s = idp.session()
    first = redirect_params(sign_in(idp, s, bff_authorize_url(idp, SCOPE), pick=ALICE))
    assert first["state"] == "st-123" and first["code"]
    assert s.cookies.get("devidp_session")
    again = s.get(bff_authorize_url(idp, SCOPE), allow_redirects=False, timeout=10)
    params = redirect_params(again)
    assert params["code"] != first["code"]
    tokens = idp.token(forms.bff_code_redemption(params["code"])).json()
    id_claims = unverified(tokens["id_token"])
    assert id_claims["nonce"] == "n-456" and id_claims["aud"] == BFF and id_claims["oid"] == ALICE


def test_prompt_login_shows_the_page_despite_a_session(idp: RunningIdp) -> None:
    s = idp.session()
    sign_in(idp, s, bff_authorize_url(idp, SCOPE), pick=ALICE)
    r = s.get(bff_authorize_url(idp, SCOPE, prompt="login"), allow_redirects=False, timeout=10)
    assert r.status_code == 200 and "Pick an account" in r.text
    sel = s.get(bff_authorize_url(idp, SCOPE, prompt="select_account"), allow_redirects=False, timeout=10)
    assert sel.status_code == 200 and "(signed in)" in sel.text


def test_prompt_none_without_session_is_login_required_50058(idp: RunningIdp) -> None:
    r = idp.session().get(bff_authorize_url(idp, SCOPE, prompt="none"), allow_redirects=False, timeout=10)
    params = redirect_params(r)
    assert params["error"] == "login_required"
    assert params["error_description"].startswith("AADSTS50058:")
    assert params["state"] == "st-123"


def test_login_hint_for_another_user_is_not_silent(idp: RunningIdp) -> None:
    s = idp.session()
    sign_in(idp, s, bff_authorize_url(idp, SCOPE), pick=ALICE)
    hint = bff_authorize_url(idp, SCOPE, login_hint="bob@contoso-dev.example")
    r = s.get(hint, allow_redirects=False, timeout=10)
    assert r.status_code == 200 and 'value="bob@contoso-dev.example"' in r.text


def test_unregistered_redirect_uri_is_shown_on_page_not_redirected_50011(idp: RunningIdp) -> None:
    r = idp.session().get(
        authorize_url(idp, BFF, "https://evil.example/cb", SCOPE), allow_redirects=False, timeout=10
    )
    assert r.status_code == 400
    assert "Location" not in r.headers
    assert "AADSTS50011" in r.text and "https://evil.example/cb" in r.text


def test_redirect_uri_of_other_platform_prefix_or_case_does_not_match(idp: RunningIdp) -> None:
    s = idp.session()
    for uri in (
        "https://localhost:8443/oauth2/callback/",
        "HTTPS://localhost:8443/oauth2/callback",
        "https://localhost:8443/oauth2/callback?x=1",
    ):
        r = s.get(authorize_url(idp, BFF, uri, SCOPE), allow_redirects=False, timeout=10)
        assert r.status_code == 400 and "AADSTS50011" in r.text, uri


def test_unknown_client_is_shown_on_page_700016(idp: RunningIdp) -> None:
    r = idp.session().get(
        authorize_url(idp, "99999999-9999-4999-8999-999999999999", BFF_REDIRECT, SCOPE),
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 400 and "AADSTS700016" in r.text


def test_spa_without_pkce_gets_9002325_at_redirect_uri(idp: RunningIdp) -> None:
    params = redirect_params(
        idp.session().get(authorize_url(idp, SPA, SPA_REDIRECT, SCOPE), allow_redirects=False, timeout=10)
    )
    assert params["error"] == "invalid_request"
    assert params["error_description"].startswith("AADSTS9002325:")


def test_plain_pkce_method_is_refused(idp: RunningIdp) -> None:
    url = authorize_url(idp, SPA, SPA_REDIRECT, SCOPE, code_challenge="a" * 43, code_challenge_method="plain")
    params = redirect_params(idp.session().get(url, allow_redirects=False, timeout=10))
    assert params["error"] == "invalid_request"


def test_scope_not_exposed_at_authorize_goes_to_redirect_uri_650053(idp: RunningIdp) -> None:
    url = bff_authorize_url(idp, f"openid {API_URI}/nope")
    params = redirect_params(idp.session().get(url, allow_redirects=False, timeout=10))
    assert params["error"] == "invalid_scope" and params["error_description"].startswith("AADSTS650053:")


def test_public_client_localhost_redirect_matches_any_port(idp: RunningIdp) -> None:
    _, challenge = pkce_pair()
    r = idp.session().get(
        authorize_url(idp, POSTMAN, "http://localhost:61234", SCOPE, challenge=challenge),
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 200


def test_form_post_response_mode_posts_code_and_state(idp: RunningIdp) -> None:
    s = idp.session()
    r = sign_in(idp, s, bff_authorize_url(idp, SCOPE, response_mode="form_post"), pick=ALICE)
    assert r.status_code == 200
    assert f'action="{BFF_REDIRECT}"' in r.text
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', r.text))
    assert fields["state"] == "st-123" and fields["code"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1)
    assert f'nonce="{nonce}"' in r.text


def test_disabled_user_cannot_sign_in_on_page_50057(idp: RunningIdp) -> None:
    s = idp.session()
    r = sign_in(idp, s, bff_authorize_url(idp, SCOPE), pick=FRANK)
    assert r.status_code == 200 and "AADSTS50057" in r.text
    bad = sign_in(
        idp,
        s,
        bff_authorize_url(idp, SCOPE),
        username="alice@contoso-dev.example",
        password="wrong",
    )
    assert bad.status_code == 200 and "AADSTS50126" in bad.text


def test_cancel_sends_access_denied(idp: RunningIdp) -> None:
    s = idp.session()
    page = s.get(bff_authorize_url(idp, SCOPE), timeout=10)
    r = s.post(
        idp.url(form_action(page.text)),
        data={**form_fields(page.text), "cancel": "1"},
        allow_redirects=False,
        timeout=10,
    )
    assert redirect_params(r)["error"] == "access_denied"


def test_logout_ends_session_and_redirects_only_to_registered_uri(idp: RunningIdp) -> None:
    # Signed in to the SPA only, which registers no front-channel logout URL: no sign-out page
    # (test_single_sign_out.py has the apps that do), the end-session endpoint answers at once.
    s = idp.session()
    _, challenge = pkce_pair()
    spa = authorize_url(idp, SPA, SPA_REDIRECT, SCOPE, challenge=challenge)
    sign_in(idp, s, spa, pick=ALICE)
    bad = s.get(
        idp.url(f"/{TENANT}/oauth2/v2.0/logout"),
        params={"post_logout_redirect_uri": "https://evil.example/"},
        allow_redirects=False,
        timeout=10,
    )
    assert bad.status_code == 400 and "Location" not in bad.headers
    sign_in(idp, s, spa, pick=ALICE)
    out = s.get(
        idp.url(f"/{TENANT}/oauth2/v2.0/logout"),
        params={"post_logout_redirect_uri": "https://localhost:8443/", "client_id": BFF, "state": "bye"},
        allow_redirects=False,
        timeout=10,
    )
    assert out.status_code == 302
    loc = urlsplit(out.headers["Location"])
    assert loc.netloc == "localhost:8443" and parse_qs(loc.query)["state"] == ["bye"]
    # The session is over: a silent request now needs a sign-in.
    silent = authorize_url(idp, SPA, SPA_REDIRECT, SCOPE, challenge=challenge, prompt="none")
    again = s.get(silent, allow_redirects=False, timeout=10)
    assert redirect_params(again)["error"] == "login_required"
