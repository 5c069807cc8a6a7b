"""Single sign-out as Entra does it: the end-session page loads, in hidden iframes, the front-channel
logout URL (``web.logoutUrl``) of every app signed in to during the ended sign-in, with ``?sid=``,
then goes on to the validated ``post_logout_redirect_uri``."""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from devidp.config import config_from_mapping
from devidp.pages import FRONT_CHANNEL_TIMEOUT_MS
from devidp.signin import with_query
from service_runtime.config_error import ConfigError
from stack import render
from stack.topology import Topology
from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    BFF,
    BFF_LOGOUT_URL,
    CAROL,
    EXAMPLE,
    OTHER_TENANT,
    SECOND_APP,
    SECOND_APP_LOGOUT_URL,
    SECOND_APP_REDIRECT,
    SPA,
    SPA_REDIRECT,
    TENANT,
    RunningIdp,
    authorize_url,
    bff_authorize_url,
    continue_to,
    example_mapping,
    front_channel_frames,
    logout,
    pkce_pair,
    redirect_params,
    sign_in,
    unverified,
)

SCOPE = "openid profile offline_access"
BACK = "https://localhost:8443/"  # the BFF's registered post-logout redirect URI
MALLORY = "3a110000-0000-4000-8000-000000000007"
FABRIKAM_APP = "f0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b"
FABRIKAM_REDIRECT = "https://fabrikam-app.example/callback"
FABRIKAM_LOGOUT_URL = "https://fabrikam-app.example/signout"


def _second_app_url(idp: RunningIdp) -> str:
    return authorize_url(idp, SECOND_APP, SECOND_APP_REDIRECT, SCOPE)


def _id_token(idp: RunningIdp, form: dict[str, str]) -> dict[str, Any]:
    r = idp.token(form)
    assert r.status_code == 200, r.text
    return unverified(r.json()["id_token"])


def _sign_in_to_bff_then_second_app(idp: RunningIdp, browser: requests.Session) -> list[dict[str, Any]]:
    """Alice signs in at the BFF, then at the second app by single sign-on; both apps' ID tokens."""
    bff = redirect_params(sign_in(idp, browser, bff_authorize_url(idp, SCOPE), pick=ALICE))
    second = redirect_params(browser.get(_second_app_url(idp), allow_redirects=False, timeout=10))
    return [
        _id_token(idp, forms.bff_code_redemption(bff["code"])),
        _id_token(idp, forms.second_app_code_redemption(second["code"])),
    ]


def _sign_in_to_spa(idp: RunningIdp, browser: requests.Session) -> None:
    _, challenge = pkce_pair()
    url = authorize_url(idp, SPA, SPA_REDIRECT, SCOPE, challenge=challenge)
    assert redirect_params(browser.get(url, allow_redirects=False, timeout=10))["code"]


def _csp(response: requests.Response) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


# -- which apps are called, with which sid ---------------------------------------------------------------


def test_logout_frames_the_logout_url_of_exactly_the_apps_signed_in_to_with_the_id_tokens_sid(
    idp: RunningIdp,
) -> None:
    browser = idp.session()
    id_tokens = _sign_in_to_bff_then_second_app(idp, browser)
    _sign_in_to_spa(idp, browser)  # signed in too, but the SPA registers no front-channel logout URL
    sids = {claims["sid"] for claims in id_tokens}
    assert len(sids) == 1, "every ID token of one sign-in session carries the same sid"
    (sid,) = sids

    out = logout(idp, browser, post_logout_redirect_uri=BACK, client_id=BFF)

    assert out.status_code == 200
    assert out.headers["Content-Type"].startswith("text/html")
    assert "Location" not in out.headers
    assert front_channel_frames(out.text) == [
        f"{BFF_LOGOUT_URL}?sid={sid}",
        f"{SECOND_APP_LOGOUT_URL}?sid={sid}",
    ]
    assert "iss=" not in out.text  # Entra sends the sid alone
    assert continue_to(out.text) == BACK
    assert "You signed out of your account" in out.text


def test_apps_not_signed_in_to_during_the_session_are_not_called(idp: RunningIdp) -> None:
    browser = idp.session()
    second = redirect_params(sign_in(idp, browser, _second_app_url(idp), pick=ALICE))
    sid = _id_token(idp, forms.second_app_code_redemption(second["code"]))["sid"]

    out = logout(idp, browser)

    assert out.status_code == 200
    assert front_channel_frames(out.text) == [f"{SECOND_APP_LOGOUT_URL}?sid={sid}"]


def test_logout_url_with_a_query_gets_the_sid_appended_with_an_ampersand(start_idp) -> None:
    def with_query_in_logout_url(data: dict[str, Any]) -> None:
        data["tenants"][0]["applications"][1]["web"]["logoutUrl"] = BFF_LOGOUT_URL + "?from=devidp"

    idp = start_idp(with_query_in_logout_url)
    browser = idp.session()
    sign_in(idp, browser, bff_authorize_url(idp, SCOPE), pick=ALICE)
    sid = idp.runtime.store.session(browser.cookies["devidp_session"]).tenants[TENANT].sid

    assert front_channel_frames(logout(idp, browser).text) == [f"{BFF_LOGOUT_URL}?from=devidp&sid={sid}"]


def test_query_fields_are_appended_encoded_after_any_existing_query() -> None:
    assert with_query("https://app.example/out", {"sid": "a b&c"}) == "https://app.example/out?sid=a+b%26c"
    assert with_query("https://app.example/out?x=1", {"sid": "s"}) == "https://app.example/out?x=1&sid=s"
    assert with_query("https://app.example/out?", {"sid": "s"}) == "https://app.example/out?sid=s"
    assert with_query("https://app.example/out", {}) == "https://app.example/out"


# -- where the page goes afterwards ----------------------------------------------------------------------


def test_the_page_goes_on_to_the_validated_post_logout_redirect_uri_with_state(idp: RunningIdp) -> None:
    browser = idp.session()
    _sign_in_to_bff_then_second_app(idp, browser)

    out = logout(idp, browser, post_logout_redirect_uri=BACK, client_id=BFF, state="bye & back")

    assert out.status_code == 200
    assert continue_to(out.text) == BACK + "?state=bye+%26+back"
    # Without script the same target is a link.
    assert f'<a href="{BACK}?state=bye+%26+back">Continue</a>' in out.text


def test_an_unregistered_post_logout_redirect_uri_is_refused_but_the_apps_are_still_signed_out(
    idp: RunningIdp,
) -> None:
    browser = idp.session()
    _sign_in_to_bff_then_second_app(idp, browser)

    out = logout(idp, browser, post_logout_redirect_uri="https://evil.example/", state="x")

    assert out.status_code == 400
    assert "Location" not in out.headers
    assert "AADSTS50011" in out.text and "https://evil.example/" in out.text
    assert continue_to(out.text) is None
    assert "evil.example/?state" not in out.text
    assert len(front_channel_frames(out.text)) == 2


def test_without_a_post_logout_redirect_uri_the_page_shows_the_signed_out_message(idp: RunningIdp) -> None:
    browser = idp.session()
    _sign_in_to_bff_then_second_app(idp, browser)

    out = logout(idp, browser)

    assert out.status_code == 200
    assert continue_to(out.text) is None
    assert "<p id=signed-out hidden>It&#x27;s a good idea to close all browser windows.</p>" in out.text
    assert "Continue</a>" not in out.text


def test_the_page_allows_frames_of_exactly_the_logout_origins_and_only_its_own_nonced_script(
    idp: RunningIdp,
) -> None:
    browser = idp.session()
    _sign_in_to_bff_then_second_app(idp, browser)

    out = logout(idp, browser, post_logout_redirect_uri=BACK, client_id=BFF)

    csp = _csp(out)
    assert csp["default-src"] == "'none'"
    assert csp["frame-src"] == "http://127.0.0.1:8981 https://localhost:8443"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{16,})'", csp["script-src"]).group(1)
    assert re.findall(r"<script nonce=\"([^\"]+)\">", out.text) == [nonce]
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert out.headers["X-Frame-Options"] == "DENY"
    assert out.headers["Cache-Control"] == "no-store"
    # The script moves on when every frame has loaded, or after the bounded wait.
    assert f"window.setTimeout(finish, {FRONT_CHANNEL_TIMEOUT_MS})" in out.text
    assert FRONT_CHANNEL_TIMEOUT_MS == 5000


# -- the session is over ------------------------------------------------------------------------------


def test_a_second_logout_with_the_ended_session_calls_no_app(idp: RunningIdp) -> None:
    browser = idp.session()
    _sign_in_to_bff_then_second_app(idp, browser)
    assert len(front_channel_frames(logout(idp, browser).text)) == 2

    again = logout(idp, browser, post_logout_redirect_uri=BACK, client_id=BFF, state="bye")

    assert again.status_code == 302
    assert again.headers["Location"] == BACK + "?state=bye"
    plain = logout(idp, browser)
    assert plain.status_code == 200 and front_channel_frames(plain.text) == []
    assert (
        "Content-Security-Policy" in plain.headers
        and "frame-src" not in plain.headers["Content-Security-Policy"]
    )


def test_a_new_sign_in_after_logout_gets_a_new_sid_and_its_frames_carry_it(idp: RunningIdp) -> None:
    browser = idp.session()
    (first, _) = _sign_in_to_bff_then_second_app(idp, browser)
    logout(idp, browser)

    (again, _) = _sign_in_to_bff_then_second_app(idp, browser)

    assert again["sid"] != first["sid"]
    frames = front_channel_frames(logout(idp, browser).text)
    assert frames == [f"{BFF_LOGOUT_URL}?sid={again['sid']}", f"{SECOND_APP_LOGOUT_URL}?sid={again['sid']}"]


def test_signing_in_again_as_the_same_user_keeps_the_sid_and_another_user_starts_a_new_one(
    idp: RunningIdp,
) -> None:
    browser = idp.session()
    bff = redirect_params(sign_in(idp, browser, bff_authorize_url(idp, SCOPE), pick=ALICE))
    first = _id_token(idp, forms.bff_code_redemption(bff["code"]))["sid"]

    same = redirect_params(sign_in(idp, browser, bff_authorize_url(idp, SCOPE, prompt="login"), pick=ALICE))
    assert _id_token(idp, forms.bff_code_redemption(same["code"]))["sid"] == first

    other = redirect_params(sign_in(idp, browser, _second_app_url(idp) + "&prompt=login", pick=CAROL))
    carol_sid = _id_token(idp, forms.second_app_code_redemption(other["code"]))["sid"]
    assert carol_sid != first
    # Carol's sign-in replaced Alice's in this browser: only the app Carol signed in to is called.
    assert front_channel_frames(logout(idp, browser).text) == [f"{SECOND_APP_LOGOUT_URL}?sid={carol_sid}"]


def _with_fabrikam_web_app(data: dict[str, Any]) -> None:
    data["tenants"][1]["applications"].append(
        {
            "displayName": "Fabrikam web app",
            "appId": FABRIKAM_APP,
            "web": {"redirectUris": [FABRIKAM_REDIRECT], "logoutUrl": FABRIKAM_LOGOUT_URL},
            "passwordCredentials": [{"secretText": "fabrikam-web-secret-change-me"}],
        }
    )


def test_logout_of_one_tenant_calls_only_that_tenants_apps(start_idp) -> None:
    idp = start_idp(_with_fabrikam_web_app)
    browser = idp.session()
    _sign_in_to_bff_then_second_app(idp, browser)
    fabrikam = authorize_url(idp, FABRIKAM_APP, FABRIKAM_REDIRECT, "openid", tenant=OTHER_TENANT)
    assert redirect_params(sign_in(idp, browser, fabrikam, pick=MALLORY))["code"]

    contoso_out = front_channel_frames(logout(idp, browser).text)
    assert [src.split("?")[0] for src in contoso_out] == [BFF_LOGOUT_URL, SECOND_APP_LOGOUT_URL]

    fabrikam_out = front_channel_frames(logout(idp, browser, tenant=OTHER_TENANT).text)
    assert [src.split("?")[0] for src in fabrikam_out] == [FABRIKAM_LOGOUT_URL]
    assert fabrikam_out[0].split("sid=")[1] != contoso_out[0].split("sid=")[1]


# -- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logout_url", "problem"),
    [
        ("http://app.example/signout", "Entra accepts http front-channel logout URLs only for localhost"),
        ("https://localhost:8443/signout#now", "front-channel logout URLs may not contain a fragment"),
        ("/oauth2/front_channel_logout", "is not an absolute http(s) URL"),
        ("ftp://localhost/signout", "is not an absolute http(s) URL"),
        ("https://user:pw@localhost:8443/signout", "the host must be a plain host name or address"),
        (42, "expected a string, got int"),
    ],
)
def test_a_bad_logout_url_is_a_configuration_problem_named_by_its_place(
    logout_url: object, problem: str
) -> None:
    data = copy.deepcopy(example_mapping())
    data["tenants"][0]["applications"][1]["web"]["logoutUrl"] = logout_url

    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, "bad.toml")

    assert [p for p in info.value.problems if p.startswith("tenants[0].applications[1].web.logoutUrl: ")]
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_logout_url_is_a_key_of_the_web_platform_only() -> None:
    data = copy.deepcopy(example_mapping())
    data["tenants"][0]["applications"][2]["spa"]["logoutUrl"] = BFF_LOGOUT_URL

    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, "bad.toml")

    assert any(
        p.startswith("tenants[0].applications[2].spa.logoutUrl: unknown key") for p in info.value.problems
    )


def test_the_example_registers_the_bffs_and_the_second_apps_logout_urls() -> None:
    tenant = config_from_mapping(example_mapping()).tenant(TENANT)
    assert tenant is not None
    assert {app.app_id: app.logout_url for app in tenant.applications if app.logout_url} == {
        BFF: BFF_LOGOUT_URL,
        SECOND_APP: SECOND_APP_LOGOUT_URL,
    }


def test_a_stack_on_another_port_moves_the_bffs_logout_url_and_leaves_the_second_apps(tmp_path: Path) -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    moved = render.devidp_config_text(example, replace(Topology(run_dir=tmp_path), nginx_port=18443))

    tenant = config_from_mapping(tomllib.loads(moved)).tenant(TENANT)
    assert tenant is not None
    assert {app.app_id: app.logout_url for app in tenant.applications if app.logout_url} == {
        BFF: "https://localhost:18443/oauth2/front_channel_logout",
        SECOND_APP: SECOND_APP_LOGOUT_URL,
    }
    assert tenant.application(SECOND_APP).web_redirect_uris == (SECOND_APP_REDIRECT,)
