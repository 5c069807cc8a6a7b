"""A person in a real browser (Debian's Chromium driven by Playwright) against the whole local stack.

nginx, oauth2-proxy, the verifier, FastAPI, Redis and devidp all run as real processes (the ``stack``
fixture in conftest.py); the browser signs in on devidp's page exactly as it would on Entra's.
Launching and certificate trust are in browser.py.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.e2e.browser import (
    api_fetch,
    browser_storage,
    create_project,
    expect_sign_in_page,
    fresh_context,
    password,
    sign_in,
    upn,
)
from tests.e2e.edge_client import STEP_UP_CODES

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SIGNED_IN_SCREENSHOT = Path("/tmp/spa-signed-in.png")
# Values that would mean a token reached script-readable storage: a JWT, or a name that says token.
TOKEN_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.|access_token|id_token|refresh_token|oauth2_proxy", re.I)


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with fresh_context(browser, height=860) as context:
        yield context


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def page_errors(page: Page) -> list[str]:
    """Script errors and CSP violations the page reports; a test that asserts this list is empty
    proves the build runs under nginx's strict policy (no inline script or style was needed)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(f"CSP: {message.text}")

    page.on("console", on_console)
    return errors


# --- tests -------------------------------------------------------------------------------------------


def test_reader_signs_in_at_devidp_and_sees_her_identity_with_no_token_in_reach_of_script(
    page: Page,
    page_errors: list[str],
    context: BrowserContext,
    site: dict[str, str],
    tmp_path: Path,
    stack: Any,
) -> None:
    page.goto(site["app"] + "/")
    expect_sign_in_page(page, site)
    page.screenshot(path=str(tmp_path / "01-devidp-sign-in.png"), full_page=True)

    page.get_by_label("Username").fill(upn("alice"))
    page.get_by_label("Password").fill(password("alice"))
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page).to_have_url(site["app"] + "/")
    expect(page.get_by_test_id("signed-in-user")).to_have_text("Alice Reader")
    expect(page.get_by_test_id("me-name")).to_have_text("Alice Reader")
    expect(page.get_by_test_id("me-email")).to_have_text(upn("alice"))
    expect(page.get_by_test_id("me-roles")).to_have_text("Reader")
    expect(page.get_by_test_id("me-scopes")).to_contain_text("user.read")
    expect(page.get_by_test_id("me-auth-source")).to_have_text("Browser session (oauth2-proxy)")
    expect(page.get_by_test_id("me-oid")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    page.screenshot(path=str(tmp_path / "02-signed-in-reader.png"), full_page=True)
    page.screenshot(path=str(SIGNED_IN_SCREENSHOT), full_page=True)

    # The session cookie exists, but only the browser can see it: HttpOnly, Secure, host-only, Lax.
    session_cookies = [
        c for c in context.cookies(site["app"]) if c["name"] == stack.topology.session_cookie_name
    ]
    assert len(session_cookies) == 1, [c["name"] for c in context.cookies(site["app"])]
    cookie = session_cookies[0]
    flags = (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"])
    assert flags == (True, True, "Lax", "/"), cookie
    assert cookie["domain"] == "localhost"

    storage = browser_storage(page)
    assert stack.topology.session_cookie_name not in storage["cookie"]
    assert "oauth2_proxy" not in storage["cookie"]
    assert storage["local"] == {} and storage["session"] == {}, storage
    assert not TOKEN_LIKE.search(json.dumps(storage)), storage
    assert page_errors == []


def test_reader_gets_no_create_button_and_a_scripted_post_without_csrf_token_is_refused(
    page: Page, page_errors: list[str], site: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, site, "alice")
    expect(page.get_by_test_id("read-only-hint")).to_be_visible()
    expect(page.get_by_role("button", name="Create project")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile(r"^(Edit|Delete) "))).to_have_count(0)

    # What an injected script (or a forged cross-site form) could try: the cookie goes along, the
    # CSRF token does not. The edge refuses it before the API sees it.
    refused = api_fetch(page, "POST", "/api/projects", body={"name": "sneaky", "description": ""})
    assert refused["status"] == 403, refused
    assert refused["body"]["error"] == "forbidden"
    assert refused["body"]["reason"] == "csrf_token_missing", refused

    # With a valid token the request gets through CSRF and is refused by the API's role policy.
    me = api_fetch(page, "GET", "/api/me")
    assert me["status"] == 200 and me["csrf"], me
    body = {"name": "sneaky", "description": ""}
    by_policy = api_fetch(page, "POST", "/api/projects", body=body, csrf=me["csrf"])
    assert by_policy["status"] == 403, by_policy
    assert by_policy["body"]["reason"] == "missing_role", by_policy
    assert "Writer" in by_policy["body"]["required"], by_policy

    # Nothing was created.
    listed = api_fetch(page, "GET", "/api/projects?limit=100")
    assert listed["status"] == 200
    assert "sneaky" not in [p["name"] for p in listed["body"]["items"]]
    page.screenshot(path=str(tmp_path / "reader-no-create.png"), full_page=True)
    assert page_errors == []

    # The page runs under a policy that would stop an injected inline script, and the check above
    # would have seen it: the violation is reported to the console this test listens to.
    ran = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__injected = true";
            document.body.appendChild(script);
            return window.__injected === true;
        }"""
    )
    assert ran is False

    def reported() -> bool:
        return any(e.startswith("CSP: ") and "script-src" in e for e in page_errors)

    for _ in range(50):  # console events arrive asynchronously
        if reported():
            break
        page.wait_for_timeout(100)
    assert reported(), page_errors


def test_writer_creates_and_edits_a_project_through_the_ui(
    page: Page, page_errors: list[str], site: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, site, "bob")
    expect(page.get_by_test_id("me-roles")).to_have_text("Writer")
    name = f"Apollo {uuid.uuid4().hex[:8]}"

    form = page.get_by_role("form", name="New project")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Description").fill("Launch tracking, created in the browser")
    form.get_by_role("button", name="Create project").click()

    expect(page.get_by_role("status")).to_have_text(f"Project “{name}” created.")
    row = page.get_by_role("row", name=re.compile(re.escape(name)))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Launch tracking, created in the browser")
    expect(row).to_contain_text("active")
    expect(form.get_by_label("Name")).to_have_value("")
    # A Writer may edit but not delete.
    expect(page.get_by_role("button", name=f"Delete {name}")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "writer-created.png"), full_page=True)

    # Every write spends its CSRF token; a second write must get a fresh one and still succeed.
    page.get_by_role("button", name=f"Edit {name}").click()
    edit = page.get_by_role("form", name=f"Edit {name}")
    edit.get_by_label("Status").select_option("archived")
    edit.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Project “{name}” saved.")
    expect(page.get_by_role("row", name=re.compile(re.escape(name)))).to_contain_text("archived")

    # The API holds what the UI showed.
    listed = api_fetch(page, "GET", "/api/projects?limit=100")
    created = [p for p in listed["body"]["items"] if p["name"] == name]
    assert len(created) == 1, listed
    assert created[0]["status"] == "archived"
    assert created[0]["description"] == "Launch tracking, created in the browser"
    page.screenshot(path=str(tmp_path / "writer-edited.png"), full_page=True)
    assert page_errors == []


def test_user_without_an_app_role_is_told_so_instead_of_seeing_errors(
    page: Page, page_errors: list[str], site: dict[str, str], tmp_path: Path
) -> None:
    page.goto(site["app"] + "/")
    expect_sign_in_page(page, site)
    page.get_by_label("Username").fill(upn("erin"))
    page.get_by_label("Password").fill(password("erin"))
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page.get_by_test_id("me-name")).to_have_text("Erin No-Role")
    expect(page.get_by_test_id("me-roles")).to_have_text("No app role")
    expect(page.get_by_test_id("no-access")).to_contain_text("no role in this application")
    expect(page.get_by_role("table")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "no-role.png"), full_page=True)
    assert page_errors == []


def test_an_expired_session_shows_signed_out_with_a_sign_in_link(
    page: Page, context: BrowserContext, site: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, site, "bob")
    context.clear_cookies()  # as if the session had expired while the page stayed open

    form = page.get_by_role("form", name="New project")
    form.get_by_label("Name").fill("never stored")
    form.get_by_role("button", name="Create project").click()

    link = page.get_by_role("link", name="Signed out — sign in")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", "/oauth2/start?rd=%2F")
    page.screenshot(path=str(tmp_path / "signed-out.png"), full_page=True)

    link.click()
    expect_sign_in_page(page, site)


def test_sign_out_clears_the_cookie_and_the_old_session_is_refused_afterwards(
    page: Page, context: BrowserContext, browser: Browser, site: dict[str, str], stack: Any
) -> None:
    sign_in(page, site, "alice")
    cookie_name = stack.topology.session_cookie_name
    (old,) = [c for c in context.cookies(site["app"]) if c["name"] == cookie_name]

    with page.expect_response(lambda r: urlsplit(r.url).path == "/oauth2/sign_out") as signed_out:
        page.get_by_role("button", name="Sign out", exact=True).click()
    response = signed_out.value
    # oauth2-proxy answers with a redirect on to the provider's sign-out (the edge decides where).
    assert response.status == 302
    assert response.headers["location"].startswith("/"), response.headers["location"]
    # header_values, not headers: Playwright leaves Set-Cookie out of the plain header dict.
    cleared = [line for line in response.header_values("set-cookie") if line.startswith(cookie_name)]
    assert cleared and all(re.search(r"Expires=Thu, 01 Jan 1970|Max-Age=0", line) for line in cleared), (
        cleared
    )

    # Replaying the old cookie from another browser profile gets nothing: the session is gone from
    # Redis, not only from this browser.
    replay = browser.new_context()
    try:
        replay.add_cookies([{k: old[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly")}])
        replay_page = replay.new_page()
        answer = replay_page.goto(site["app"] + "/api/me")
        assert answer is not None and answer.status == 401, answer and answer.text()
        assert json.loads(answer.text())["error"] == "unauthorized"
    finally:
        replay.close()


def test_sign_out_returns_to_the_sign_in_page(
    page: Page, context: BrowserContext, site: dict[str, str], tmp_path: Path, stack: Any
) -> None:
    """Sign-out must end the provider's single sign-on session too: if it did not, the redirect to /
    would sign the person straight back in without a password."""
    sign_in(page, site, "alice")
    page.get_by_role("button", name="Sign out", exact=True).click()

    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(tmp_path / "after-sign-out.png"), full_page=True)
    expect_sign_in_page(page, site)
    names = [c["name"] for c in context.cookies(site["app"])]
    assert stack.topology.session_cookie_name not in names, names


def _step_up_at_devidp(page: Page, site: dict[str, str], name: str) -> None:
    """devidp's step-up page, its stand-in for the second factor Conditional Access asks for: the
    person is still signed in there, so only the code is asked."""
    expect(page).to_have_url(re.compile("^" + re.escape(site["idp"]) + "/"))
    expect(page.get_by_role("heading", name="Verify your identity")).to_be_visible()
    page.get_by_label("Code").fill(STEP_UP_CODES[name])
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(page).to_have_url(re.compile("^" + re.escape(site["app"]) + "/"))


def test_admin_steps_up_then_saves_settings_and_deletes_a_project_through_the_ui(
    page: Page, page_errors: list[str], site: dict[str, str], tmp_path: Path
) -> None:
    # Both need step-up (authentication context c1) and re-validate the session's access token.
    sign_in(page, site, "carol")
    expect(page.get_by_test_id("me-roles")).to_have_text("Admin")

    admin = page.get_by_role("region", name="Administration")
    banner = f"Maintenance {uuid.uuid4().hex[:8]}"
    admin.get_by_label("Maximum projects per owner").fill("1000")
    admin.get_by_label("Banner text").fill(banner)
    admin.get_by_role("button", name="Save settings").click()
    # The API's claims challenge: the page says why it is about to leave, and has saved nothing.
    prompt = admin.get_by_role("alert").filter(has_text="Verify your identity to change the settings")
    expect(prompt).to_be_visible()
    page.screenshot(path=str(tmp_path / "step-up-prompt.png"), full_page=True)
    assert api_fetch(page, "GET", "/api/admin/settings")["body"]["banner"] != banner
    prompt.get_by_role("button", name="Verify and continue").click()

    _step_up_at_devidp(page, site, "carol")
    # Back with the draft re-opened for one more click: the return itself saved nothing.
    expect(admin.get_by_label("Banner text")).to_have_value(banner)
    expect(admin.get_by_role("status")).to_contain_text("Identity verified")
    assert "resume" not in page.url
    assert api_fetch(page, "GET", "/api/admin/settings")["body"]["banner"] != banner
    admin.get_by_role("button", name="Save settings").click()
    expect(admin.get_by_role("status")).to_have_text("Settings saved.")
    expect(admin.get_by_role("alert")).to_have_count(0)
    saved = api_fetch(page, "GET", "/api/admin/settings")
    assert (saved["status"], saved["body"]["banner"], saved["body"]["max_projects_per_owner"]) == (
        200,
        banner,
        1000,
    )

    # The session now carries the context: the delete asks nothing more.
    name = f"Doomed {uuid.uuid4().hex[:8]}"
    row = create_project(page, name)
    page.get_by_role("button", name=f"Delete {name}").click()
    page.get_by_role("button", name=f"Confirm delete {name}").click()
    expect(page.get_by_text(f"Project “{name}” deleted.")).to_be_visible()
    expect(row).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    listed = api_fetch(page, "GET", "/api/projects?limit=100")
    assert name not in {p["name"] for p in listed["body"]["items"]}
    page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
    assert page_errors == []


def test_admin_delete_asks_for_step_up_and_comes_back_to_the_confirmation(
    page: Page, page_errors: list[str], site: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, site, "carol")
    name = f"Step-up {uuid.uuid4().hex[:8]}"
    row = create_project(page, name)
    page.get_by_role("button", name=f"Delete {name}").click()
    page.get_by_role("button", name=f"Confirm delete {name}").click()
    prompt = page.get_by_role("alert").filter(has_text=f"Verify your identity to delete “{name}”")
    expect(prompt).to_be_visible()
    expect(row).to_have_count(1)
    prompt.get_by_role("button", name="Verify and continue").click()

    _step_up_at_devidp(page, site, "carol")
    # The confirmation is open again, for the person to click: a link alone never deletes.
    confirm = page.get_by_role("button", name=f"Confirm delete {name}")
    expect(confirm).to_be_visible()
    expect(row).to_have_count(1)
    page.screenshot(path=str(tmp_path / "step-up-resumed.png"), full_page=True)
    confirm.click()
    expect(page.get_by_text(f"Project “{name}” deleted.")).to_be_visible()
    expect(row).to_have_count(0)
    assert page_errors == []


def test_phone_sized_screen_does_not_scroll_sideways(
    browser: Browser, site: dict[str, str], tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    try:
        page = context.new_page()
        # The Admin sees the most: identity, projects with their action buttons, the admin panel.
        sign_in(page, site, "carol")
        # A project in the table, with its Edit and Delete buttons, and a long unbroken name.
        name = f"Telemetry-pipeline-{uuid.uuid4().hex}"
        create_project(page, name, "A description long enough to wrap on a phone screen, twice.")
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        page.screenshot(path="/tmp/spa-phone.png", full_page=True)
        widths = page.evaluate(
            "() => ({doc: document.documentElement.scrollWidth, view: window.innerWidth,"
            " header: document.querySelector('.topbar').getBoundingClientRect().width})"
        )
        assert widths["view"] == 390, widths
        assert widths["doc"] <= widths["view"], widths
        assert widths["header"] == widths["view"], widths
    finally:
        context.close()
