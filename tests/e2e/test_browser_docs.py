"""The API's documentation page in a real browser: Swagger UI from our own origin, under its strict CSP,
signing in with authorization code + PKCE in a popup and calling the API with the token it got.

The whole local stack runs (the ``stack`` fixture); Chromium is launched by browser.py and trusts
only certificates issued by the stack's own CA.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Response, expect

from tests.e2e.browser import fresh_context, password, sign_in, upn
from tests.prerequisites import require_file

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DOCS_SCREENSHOT = Path("/tmp/api-docs.png")
SPA_CLIENT_ID = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
CAROL_OID = "ca201000-0000-4000-8000-000000000003"  # devidp/example.toml
DEVIDP_SESSION_COOKIE = "devidp_session"


@pytest.fixture
def context(stack: Any, browser: Browser) -> Iterator[BrowserContext]:
    require_file(
        stack.topology.spa_root / "swagger-ui" / "swagger-ui-bundle.js", "run `npm run build` in spa/"
    )
    with fresh_context(browser, height=1000) as context:
        yield context


@pytest.fixture
def reports(context: BrowserContext) -> list[str]:
    """Every console message and script error of every page in the context, popups included."""
    seen: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: seen.append(f"page error ({page.url}): {error}"))

        def on_console(message: ConsoleMessage) -> None:
            seen.append(f"console {message.type} ({page.url}): {message.text}")

        page.on("console", on_console)

    context.on("page", watch)
    return seen


def test_admin_opens_the_docs_signs_in_with_pkce_in_the_popup_and_calls_api_me(
    context: BrowserContext, reports: list[str], site: dict[str, str], tmp_path: Path
) -> None:
    page = context.new_page()
    # carol's browser session (oauth2-proxy) is what lets her open the docs at all.
    sign_in(page, site, "carol")

    token_responses: list[Response] = []
    context.on("response", lambda r: token_responses.append(r) if "/oauth2/v2.0/token" in r.url else None)

    page.goto(site["app"] + "/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Projects API")
    me = page.locator(
        ".opblock-get", has=page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/me$"))
    )
    expect(me).to_have_count(1)
    expect(page.locator(".opblock-summary-path", has_text="/api/projects").first).to_be_visible()
    page.screenshot(path=str(DOCS_SCREENSHOT), full_page=False)

    # A real sign-in in the popup, not a silent one on the single sign-on session the BFF left.
    context.clear_cookies(name=DEVIDP_SESSION_COOKIE)
    page.get_by_role("button", name="Authorize", exact=True).first.click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("client_id:")).to_have_value(SPA_CLIENT_ID)
    expect(dialog.get_by_label("client_secret:")).to_have_value("")
    with page.expect_popup() as opened:
        dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    popup = opened.value

    authorize = urlsplit(popup.url)
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert popup.url.startswith(site["idp"] + "/"), popup.url
    assert authorize.path.endswith("/oauth2/v2.0/authorize"), popup.url
    assert query["client_id"] == SPA_CLIENT_ID
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"]), query
    assert query["redirect_uri"] == site["app"] + "/api/docs/oauth2-redirect"

    expect(popup.get_by_label("Password")).to_be_visible()
    popup.screenshot(path=str(tmp_path / "docs-popup-sign-in.png"))
    popup.get_by_label("Username").fill(upn("carol"))
    popup.get_by_label("Password").fill(password("carol"))
    # The popup closes itself once Swagger's redirect script has handed the code to the docs page.
    # That can happen before the click returns, so the wait is armed before the click.
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Sign in", exact=True).click()

    # Swagger UI redeemed the code itself, cross-origin, as an SPA client does.
    expect(dialog.get_by_role("heading", name="Authorized", exact=True)).to_be_visible()
    redeemed = [r for r in token_responses if r.request.method == "POST"]
    assert len(redeemed) == 1, [(r.request.method, r.status) for r in token_responses]
    assert redeemed[0].status == 200
    assert redeemed[0].headers["access-control-allow-origin"] == site["app"]
    form = parse_qs(redeemed[0].request.post_data or "")
    assert form["grant_type"] == ["authorization_code"]
    assert form["client_id"] == [SPA_CLIENT_ID]
    assert len(form["code_verifier"][0]) >= 43
    assert "client_secret" not in form
    dialog.get_by_role("button", name="Close").first.click()

    # Try it out: GET /api/me with the token, shown on the page.
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/me") as called:
        me.get_by_role("button", name="Execute").click()
    assert called.value.status == 200
    assert called.value.request.headers["authorization"].startswith("Bearer ")
    live = me.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_contain_text("200")
    expect(live.locator(".response-col_description")).to_contain_text(CAROL_OID)
    expect(live.locator(".response-col_description")).to_contain_text('"auth_source": "bearer"')
    page.screenshot(path=str(tmp_path / "docs-try-it-out.png"), full_page=True)

    csp = [line for line in reports if "Content Security Policy" in line or "Content-Security-Policy" in line]
    assert csp == [], csp
    assert [line for line in reports if line.startswith("page error")] == [], reports
