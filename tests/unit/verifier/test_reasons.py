"""The one table from reason code to HTTP status, and which refusals carry an RFC 6750 challenge."""

from __future__ import annotations

from verifier.core.reasons import UNCHALLENGED_REASONS, Reason, http_status


def test_token_and_credential_refusals_are_401_unless_the_table_says_otherwise() -> None:
    assert {http_status(reason) for reason in Reason} == {400, 401, 403, 500, 503}
    assert http_status(Reason.EXPIRED) == 401
    assert http_status(Reason.ALB_KEYS_UNAVAILABLE) == 401
    assert http_status(Reason.NO_SESSION) == 401
    assert http_status(Reason.SESSION_EXPIRED) == 401


def test_forbidden_answers_are_the_policy_oauth2_proxy_and_csrf_refusals() -> None:
    forbidden = {reason for reason in Reason if http_status(reason) == 403}
    csrf = {reason for reason in Reason if reason.startswith("csrf_")} - {Reason.CSRF_STORE_UNAVAILABLE}
    assert forbidden == {Reason.INSUFFICIENT_SCOPE, Reason.INSUFFICIENT_ROLE, Reason.SESSION_FORBIDDEN} | csrf


def test_outages_are_503_and_broken_deployments_500() -> None:
    assert {reason for reason in Reason if http_status(reason) == 503} == {
        Reason.SESSION_BACKEND_UNAVAILABLE,
        Reason.CSRF_STORE_UNAVAILABLE,
    }
    assert {reason for reason in Reason if http_status(reason) == 500} == {
        Reason.SESSION_TOKEN_MISSING,
        Reason.INTERNAL_ERROR,
    }
    assert http_status(Reason.MISSING_ORIGINAL_REQUEST) == 400


def test_only_refusals_a_bearer_token_would_not_change_go_without_a_challenge() -> None:
    assert Reason.INSUFFICIENT_SCOPE not in UNCHALLENGED_REASONS
    assert Reason.NO_SESSION not in UNCHALLENGED_REASONS
    assert Reason.SESSION_FORBIDDEN in UNCHALLENGED_REASONS
    assert all(http_status(reason) == 403 for reason in UNCHALLENGED_REASONS)
