"""Step-up with Conditional Access authentication context, and client capabilities, as Entra does
them: the ``claims`` parameter asks for ``acrs`` contexts (the step-up page, then ``"acrs"`` in the
access token) and declares ``xms_cc`` capabilities (emitted when the resource opts in)."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote

import msal
import pytest
import requests

from devidp.config import config_from_mapping
from service_runtime.config_error import ConfigError
from tests.unit.devidp import forms
from tests.unit.devidp.harness import (
    ALICE,
    API,
    API_URI,
    BFF,
    CAROL,
    ERIN,
    POSTMAN,
    TENANT,
    RunningIdp,
    assert_entra_error,
    bff_authorize_url,
    example_mapping,
    form_action,
    form_fields,
    logout,
    redirect_params,
    sign_in,
    unverified,
    validate_as_resource_server,
)

SCOPE = f"openid profile offline_access {API_URI}/user.read"
ALICE_CODE = "246810"  # devidp/example.toml: alice's stepUpCode (satisfies c1)
CAROL_CODE = "314159"  # carol's (c1 and c2)
C1 = {"access_token": {"acrs": {"essential": True, "value": "c1"}}}
CP1 = {"access_token": {"xms_cc": {"values": ["cp1"]}}}


def _claims(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _authorize(idp: RunningIdp, browser: requests.Session, **extra: str) -> requests.Response:
    return browser.get(bff_authorize_url(idp, SCOPE, **extra), allow_redirects=False, timeout=10)


def _submit_step_up(
    idp: RunningIdp, browser: requests.Session, page: requests.Response, **answer: str
) -> requests.Response:
    """What a browser does on the step-up page: post its hidden fields with ``otc`` and Verify."""
    assert page.status_code == 200 and "Verify your identity" in page.text, page.text[:300]
    data = {**form_fields(page.text), **(answer or {})}
    return browser.post(idp.url(form_action(page.text)), data=data, allow_redirects=False, timeout=10)


def _tokens(idp: RunningIdp, answer: requests.Response, **extra: str) -> dict[str, Any]:
    r = idp.token(forms.bff_code_redemption(redirect_params(answer)["code"], **extra))
    assert r.status_code == 200, r.text
    return r.json()


def _alice_signed_in(idp: RunningIdp) -> requests.Session:
    browser = idp.session()
    first = sign_in(idp, browser, bff_authorize_url(idp, SCOPE), pick=ALICE)
    assert "acrs" not in unverified(_tokens(idp, first)["access_token"])
    return browser


def _stepped_up_tokens(idp: RunningIdp, claims: dict[str, Any] = C1) -> dict[str, Any]:
    browser = _alice_signed_in(idp)
    page = _authorize(idp, browser, claims=_claims(claims))
    return _tokens(idp, _submit_step_up(idp, browser, page, otc=ALICE_CODE, verify="1"))


def _api_optional_claims(*names: str):
    def edit(data: dict[str, Any]) -> None:
        data["tenants"][0]["applications"][0]["optionalClaims"] = {
            "accessToken": [{"name": n} for n in names]
        }

    return edit


# -- the step-up page ---------------------------------------------------------------------------------


def test_a_requested_context_shows_the_step_up_page_even_with_a_single_sign_on_session(
    idp: RunningIdp,
) -> None:
    browser = _alice_signed_in(idp)

    page = _authorize(idp, browser, claims=_claims(C1))

    assert page.status_code == 200 and "Location" not in page.headers
    assert "<h1>Verify your identity</h1>" in page.text
    assert "<li>Step-up for changes</li>" in page.text
    assert form_action(page.text) == f"/{TENANT}/stepup"
    assert set(form_fields(page.text)) == {"tx", "csrf"}
    assert "name=otc" in page.text and "name=verify value=1" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "script-src" not in page.headers["Content-Security-Policy"]


def test_after_step_up_the_access_token_carries_acrs_and_the_id_token_does_not(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)
    page = _authorize(idp, browser, claims=_claims(C1))

    answer = _submit_step_up(idp, browser, page, otc=ALICE_CODE, verify="1")

    assert redirect_params(answer)["state"] == "st-123"
    tokens = _tokens(idp, answer)
    access = validate_as_resource_server(idp, tokens["access_token"], audience=API)
    assert access["acrs"] == ["c1"]
    assert "acrs" not in unverified(tokens["id_token"])


def test_a_sign_in_that_asks_for_a_context_signs_in_first_then_steps_up(idp: RunningIdp) -> None:
    browser = idp.session()
    signed_in = sign_in(idp, browser, bff_authorize_url(idp, SCOPE, claims=_claims(C1)), pick=ALICE)

    answer = _submit_step_up(idp, browser, signed_in, otc=ALICE_CODE, verify="1")

    assert unverified(_tokens(idp, answer)["access_token"])["acrs"] == ["c1"]


def test_a_wrong_code_shows_the_page_again_and_the_right_one_still_completes_it(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)
    page = _authorize(idp, browser, claims=_claims(C1))

    wrong = _submit_step_up(idp, browser, page, otc="000000", verify="1")

    assert wrong.status_code == 200 and "Location" not in wrong.headers
    assert "That code didn&#x27;t work" in wrong.text
    right = _submit_step_up(idp, browser, wrong, otc=ALICE_CODE, verify="1")
    assert redirect_params(right)["code"]


def test_a_step_up_page_answered_twice_or_from_another_browser_is_refused(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)
    page = _authorize(idp, browser, claims=_claims(C1))
    stranger = idp.session()
    refused = stranger.post(
        idp.url(form_action(page.text)),
        data={**form_fields(page.text), "otc": ALICE_CODE, "verify": "1"},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 403

    assert redirect_params(_submit_step_up(idp, browser, page, otc=ALICE_CODE, verify="1"))["code"]
    again = _submit_step_up(idp, browser, page, otc=ALICE_CODE, verify="1")
    assert again.status_code == 400 and "Sign-in expired" in again.text


def test_cancel_on_the_step_up_page_sends_access_denied_50074(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)
    page = _authorize(idp, browser, claims=_claims(C1))

    params = redirect_params(_submit_step_up(idp, browser, page, cancel="1"))

    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS50074:")
    assert params["state"] == "st-123"


def test_a_satisfied_context_is_not_asked_again_in_the_session_but_is_after_logout(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)
    _submit_step_up(idp, browser, _authorize(idp, browser, claims=_claims(C1)), otc=ALICE_CODE, verify="1")

    silent = _authorize(idp, browser, claims=_claims(C1))
    assert unverified(_tokens(idp, silent)["access_token"])["acrs"] == ["c1"]

    logout(idp, browser)
    sign_in(idp, browser, bff_authorize_url(idp, SCOPE), pick=ALICE)
    assert "Verify your identity" in _authorize(idp, browser, claims=_claims(C1)).text


def test_prompt_none_with_an_unsatisfied_context_is_interaction_required_50076(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)

    params = redirect_params(_authorize(idp, browser, claims=_claims(C1), prompt="none"))

    assert params["error"] == "interaction_required"
    assert params["error_description"].startswith("AADSTS50076:")


@pytest.mark.parametrize(
    ("user", "context"),
    [(ERIN, "c1"), (ALICE, "c2")],  # erin has no stepUpCode; alice's satisfies c1 only
)
def test_a_user_who_cannot_satisfy_the_context_is_blocked_53003(
    idp: RunningIdp, user: str, context: str
) -> None:
    browser = idp.session()
    asked = {"access_token": {"acrs": {"essential": True, "value": context}}}

    params = redirect_params(
        sign_in(idp, browser, bff_authorize_url(idp, SCOPE, claims=_claims(asked)), pick=user)
    )

    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS53003:")


def test_values_ask_for_several_contexts_at_once(idp: RunningIdp) -> None:
    browser = idp.session()
    asked = {"access_token": {"acrs": {"essential": True, "values": ["c2", "c1"]}}}
    page = sign_in(idp, browser, bff_authorize_url(idp, SCOPE, claims=_claims(asked)), pick=CAROL)
    assert "<li>Step-up for changes</li><li>Step-up for administration</li>" in page.text

    answer = _submit_step_up(idp, browser, page, otc=CAROL_CODE, verify="1")

    assert unverified(_tokens(idp, answer)["access_token"])["acrs"] == ["c1", "c2"]


def test_a_context_no_policy_protects_is_issued_as_asked_without_step_up(idp: RunningIdp) -> None:
    """Developer guide, "ACRS requested, no policies configured with ACRS": the claim is issued."""
    browser = _alice_signed_in(idp)
    asked = {"access_token": {"acrs": {"essential": True, "value": "c7"}}}

    answer = _authorize(idp, browser, claims=_claims(asked))

    assert unverified(_tokens(idp, answer)["access_token"])["acrs"] == ["c7"]


def test_satisfied_contexts_are_added_opportunistically_only_for_a_resource_with_the_acrs_optional_claim(
    start_idp,
) -> None:
    for edit, expected in ((None, ["c1"]), (_api_optional_claims("idtyp"), None)):
        idp = start_idp(edit)
        browser = _alice_signed_in(idp)
        _submit_step_up(
            idp, browser, _authorize(idp, browser, claims=_claims(C1)), otc=ALICE_CODE, verify="1"
        )

        plain = unverified(_tokens(idp, _authorize(idp, browser))["access_token"])

        assert plain.get("acrs") == expected


# -- the claims parameter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        "not json",
        "[]",
        '{"access_token":[]}',
        '{"access_token":{"acrs":"c1"}}',
        '{"access_token":{"acrs":{"value":1}}}',
        '{"access_token":{"acrs":{"values":"c1"}}}',
        '{"access_token":{"acrs":{"essential":"yes","value":"c1"}}}',
        '{"access_token":{"acrs":{"value":"c100"}}}',
        '{"access_token":{"xms_cc":{"values":[1]}}}',
    ],
)
def test_a_malformed_claims_parameter_goes_back_to_the_app_as_50117(idp: RunningIdp, claims: str) -> None:
    params = redirect_params(_authorize(idp, idp.session(), claims=claims))

    assert params["error"] == "invalid_request"
    assert params["error_description"].startswith("AADSTS50117: Failed to deserialize policy")
    assert "devidp: " in params["error_description"]
    assert params["state"] == "st-123"


def test_a_malformed_claims_parameter_at_the_token_endpoint_is_50117(idp: RunningIdp) -> None:
    refresh = _stepped_up_tokens(idp)["refresh_token"]

    r = idp.token(forms.bff_refresh(refresh, claims='{"access_token":'))

    body = assert_entra_error(r, 400, "invalid_request", 50117)
    assert "not JSON" in body["error_description"]


def test_claims_json_url_encoded_once_more_is_read_too(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)

    page = _authorize(idp, browser, claims=quote(_claims(C1), safe=""))

    assert "Verify your identity" in page.text


# -- client capabilities ----------------------------------------------------------------------------------


def test_xms_cc_is_emitted_only_when_declared_and_only_known_values(idp: RunningIdp) -> None:
    browser = _alice_signed_in(idp)
    cases = [
        (CP1, ["cp1"]),
        ({"access_token": {"xms_cc": {"values": ["CP1", "foo"]}}}, ["cp1"]),
        ({"access_token": {"xms_cc": {"values": ["foo"]}}}, None),
        ({"access_token": {"xms_cc": None}}, None),
    ]
    for claims, expected in cases:
        access = unverified(_tokens(idp, _authorize(idp, browser, claims=_claims(claims)))["access_token"])
        assert access.get("xms_cc") == expected, claims
    assert "xms_cc" not in unverified(_tokens(idp, _authorize(idp, browser))["access_token"])


def test_xms_cc_needs_the_resources_optional_claim(start_idp) -> None:
    idp = start_idp(_api_optional_claims("idtyp", "acrs"))
    browser = _alice_signed_in(idp)

    access = unverified(_tokens(idp, _authorize(idp, browser, claims=_claims(CP1)))["access_token"])

    assert "xms_cc" not in access


def test_acrs_and_xms_cc_in_one_claims_object_are_both_applied(idp: RunningIdp) -> None:
    both = {"access_token": {"xms_cc": {"values": ["cp1"]}, "acrs": {"essential": True, "value": "c1"}}}

    access = unverified(_stepped_up_tokens(idp, both)["access_token"])

    assert access["acrs"] == ["c1"] and access["xms_cc"] == ["cp1"]


def test_msal_client_capabilities_reach_the_access_token(idp: RunningIdp, monkeypatch) -> None:
    monkeypatch.setattr(msal.authority.Authority, "_domains_without_user_realm_discovery", {"localhost"})
    app = msal.PublicClientApplication(
        POSTMAN,
        authority=idp.authority,
        instance_discovery=False,
        verify=str(idp.tls.ca_cert),
        client_capabilities=["cp1"],
    )

    result = app.acquire_token_by_username_password(
        "alice@contoso-dev.example", "alice-password", scopes=[f"{API_URI}/user.read"]
    )

    assert "access_token" in result, result
    assert validate_as_resource_server(idp, result["access_token"], audience=API)["xms_cc"] == ["cp1"]


# -- refresh tokens and the token endpoint -------------------------------------------------------------


def test_a_refresh_keeps_the_contexts_and_capabilities_of_its_sign_in(idp: RunningIdp) -> None:
    both = {"access_token": {"xms_cc": {"values": ["cp1"]}, "acrs": {"essential": True, "value": "c1"}}}
    refresh = _stepped_up_tokens(idp, both)["refresh_token"]

    r = idp.token(forms.bff_refresh(refresh))

    assert r.status_code == 200, r.text
    access = unverified(r.json()["access_token"])
    assert access["acrs"] == ["c1"] and access["xms_cc"] == ["cp1"]


def test_token_endpoint_claims_add_capabilities_and_cannot_skip_a_step_up(idp: RunningIdp) -> None:
    refresh = _stepped_up_tokens(idp)["refresh_token"]

    with_cp1 = idp.token(forms.bff_refresh(refresh, claims=_claims(CP1)))
    assert with_cp1.status_code == 200, with_cp1.text
    assert unverified(with_cp1.json()["access_token"])["xms_cc"] == ["cp1"]

    satisfied = idp.token(forms.bff_refresh(refresh, claims=_claims(C1)))
    assert unverified(satisfied.json()["access_token"])["acrs"] == ["c1"]

    c2 = {"access_token": {"acrs": {"essential": True, "value": "c2"}}}
    body = assert_entra_error(
        idp.token(forms.bff_refresh(refresh, claims=_claims(c2))), 400, "invalid_grant", 50076
    )
    assert body["suberror"] == "basic_action"


def test_a_password_grant_cannot_satisfy_a_protected_context(idp: RunningIdp) -> None:
    r = idp.token(
        forms.password("alice@contoso-dev.example", "alice-password", f"{API_URI}/user.read")
        | {"claims": _claims(C1)}
    )

    assert_entra_error(r, 400, "invalid_grant", 50076)


# -- configuration ------------------------------------------------------------------------------------


def _problems(edit) -> list[str]:
    data = copy.deepcopy(example_mapping())
    edit(data)
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, "bad.toml")
    return info.value.problems


@pytest.mark.parametrize(
    ("context", "place", "problem"),
    [
        (
            {"id": "c0", "displayName": "x"},
            "authenticationContexts[2].id",
            "not an authentication context id",
        ),
        ({"id": "c100", "displayName": "x"}, "authenticationContexts[2].id", "(c1 to c99)"),
        (
            {"id": "C3", "displayName": "x"},
            "authenticationContexts[2].id",
            "not an authentication context id",
        ),
        (
            {"id": "c1", "displayName": "x"},
            "authenticationContexts[2].id",
            "duplicate authentication context",
        ),
        ({"id": "c3"}, "authenticationContexts[2].displayName", "is required"),
        (
            {"id": "c3", "displayName": "x", "policy": "mfa"},
            "authenticationContexts[2].policy",
            "unknown key",
        ),
    ],
)
def test_a_bad_authentication_context_is_a_configuration_problem(
    context: dict, place: str, problem: str
) -> None:
    problems = _problems(lambda data: data["tenants"][0]["authenticationContexts"].append(context))

    assert any(p.startswith(f"tenants[0].{place}: ") and problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("user", "place", "problem"),
    [
        ({"stepUpCode": "123"}, "stepUpCode", "at least 6 characters"),
        (
            {"stepUpCode": "123456", "stepUpContexts": ["c9"]},
            "stepUpContexts[0]",
            "'c9' is not an authenticationContexts id",
        ),
        ({"stepUpContexts": ["c1"]}, "stepUpContexts", "needs stepUpCode"),
    ],
)
def test_a_bad_step_up_setting_is_a_configuration_problem(user: dict, place: str, problem: str) -> None:
    problems = _problems(lambda data: data["tenants"][0]["users"][4].update(user))  # erin

    assert any(p.startswith(f"tenants[0].users[4].{place}: ") and problem in p for p in problems), problems


def test_the_example_defines_two_contexts_and_who_can_satisfy_them() -> None:
    tenant = config_from_mapping(example_mapping()).tenant(TENANT)
    assert tenant is not None
    assert [(c.id, c.display_name) for c in tenant.authentication_contexts] == [
        ("c1", "Step-up for changes"),
        ("c2", "Step-up for administration"),
    ]
    can = {
        u.user_principal_name.split("@")[0]: sorted(u.step_up_contexts)
        for u in tenant.users
        if u.step_up_code
    }
    assert can == {"alice": ["c1"], "bob": ["c1"], "carol": ["c1", "c2"]}
    assert {"acrs", "xms_cc"} <= tenant.application(API).optional_claims.access_token
    assert tenant.application(BFF) is not None
