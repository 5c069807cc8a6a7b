"""Single sign-out in a real browser (Chromium): signed in to two apps of devidp's tenant (this edge
and a second app a small local receiver plays), the person signs out at the identity provider, whose
logout page loads both apps' front-channel logout URLs in hidden iframes with the sign-in's sid;
the edge ends its session without the cookie, and the second app hears the same sid."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser

from stack.launcher import Stack
from tests.e2e.browser import expect_sign_in_page, fresh_context, sign_in
from tests.support.servers import serving

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: devidp/example.toml's "Second app (sign-out tests)".
SECOND_APP_ID = "a8c0e2f4-5b7d-4f91-8c3e-6d8f0a2b4c61"
SECOND_APP_PORT = 8981


class SecondApp(http.server.BaseHTTPRequestHandler):
    """The second app: its sign-in callback (nothing to do) and its front-channel logout URL."""

    heard: list[str] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/front-channel-logout":
            type(self).heard.extend(parse_qs(url.query).get("sid", []))
        body = b"<!doctype html><title>Second app</title><p>ok</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def second_app() -> Iterator[type[SecondApp]]:
    SecondApp.heard = []
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", SECOND_APP_PORT), SecondApp)):
        yield SecondApp


def test_signing_out_at_the_provider_ends_the_session_here_and_at_the_other_app(
    browser: Browser, site: dict[str, str], stack: Stack, second_app: type[SecondApp], tmp_path: Path
) -> None:
    with fresh_context(browser, height=900) as context:
        page = context.new_page()
        sign_in(page, site, "alice")
        (cookie,) = [
            c for c in context.cookies(site["app"]) if c["name"] == stack.topology.session_cookie_name
        ]
        # The second app's sign-in: devidp's single sign-on answers at once with a code.
        authorize = (
            stack.topology.authority
            + "/oauth2/v2.0/authorize?"
            + urlencode(
                {
                    "client_id": SECOND_APP_ID,
                    "response_type": "code",
                    "redirect_uri": f"http://127.0.0.1:{SECOND_APP_PORT}/callback",
                    "scope": "openid profile",
                    "state": "second-app-state",
                    "nonce": "second-app-nonce",
                }
            )
        )
        page.goto(authorize)
        page.wait_for_url(f"http://127.0.0.1:{SECOND_APP_PORT}/callback?*")
        assert parse_qs(urlsplit(page.url).query)["state"] == ["second-app-state"], page.url

        # Sign out at the provider; its page frames both apps, then returns to our front page.
        page.goto(stack.topology.sign_out_url)
        expect_sign_in_page(page, site)
        page.screenshot(path=str(tmp_path / "after-single-sign-out.png"), full_page=True)

        assert len(second_app.heard) == 1, second_app.heard
        # Our session is over for every client, not only this browser (the cookie is replayed).
        with fresh_context(browser, height=900) as replay:
            replay.add_cookies(
                [{k: cookie[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly")}]
            )
            answer = replay.new_page().goto(site["app"] + "/api/me")
            assert answer is not None and answer.status == 401
            assert answer.json()["reason"] == "session_ended", answer.text()
