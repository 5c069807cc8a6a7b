"""Sign-in pages in several tabs of one browser each complete once, as Entra's do."""

from __future__ import annotations

import itertools

import pytest
import requests

from devidp.state import LOGIN_PAGE_SECONDS
from tests.unit.devidp.harness import (
    ALICE,
    RunningIdp,
    bff_authorize_url,
    form_action,
    form_fields,
    redirect_params,
)

SCOPE = "openid profile offline_access"


def _open_pages(idp: RunningIdp, browser: requests.Session, count: int) -> list[tuple[str, dict[str, str]]]:
    pages = []
    for n in range(count):
        page = browser.get(bff_authorize_url(idp, SCOPE, state=f"tab-{n}"), timeout=10)
        assert page.status_code == 200, page.text
        pages.append((form_action(page.text), form_fields(page.text)))
    return pages


def _submit(
    idp: RunningIdp, browser: requests.Session, page: tuple[str, dict[str, str]]
) -> requests.Response:
    action, fields = page
    return browser.post(idp.url(action), data={**fields, "pick": ALICE}, allow_redirects=False, timeout=10)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_every_sign_in_page_of_one_browser_completes_in_any_order(idp: RunningIdp, order) -> None:
    browser = idp.session()
    pages = _open_pages(idp, browser, 3)
    for n in order:
        answer = redirect_params(_submit(idp, browser, pages[n]))
        assert answer["state"] == f"tab-{n}" and answer["code"]


def test_a_sign_in_page_answers_once_then_says_to_start_again(idp: RunningIdp) -> None:
    browser = idp.session()
    (page,) = _open_pages(idp, browser, 1)
    assert _submit(idp, browser, page).status_code == 302
    replay = _submit(idp, browser, page)
    assert replay.status_code == 400
    assert "Start again from the application" in replay.text


def test_an_expired_sign_in_page_says_to_start_again(idp: RunningIdp) -> None:
    browser = idp.session()
    (page,) = _open_pages(idp, browser, 1)
    idp.clock.offset += LOGIN_PAGE_SECONDS + 1
    expired = _submit(idp, browser, page)
    assert expired.status_code == 400
    assert "expired" in expired.text and "Start again from the application" in expired.text


def test_a_page_shown_to_another_browser_is_refused(idp: RunningIdp) -> None:
    (page,) = _open_pages(idp, idp.session(), 1)
    other = idp.session()
    _open_pages(idp, other, 1)  # the other browser has a binding cookie of its own
    refused = _submit(idp, other, page)
    assert refused.status_code == 403 and "could not be verified" in refused.text
