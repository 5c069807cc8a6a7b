"""Debian's Chromium, driven by Playwright, for the page tests: launch, certificate trust, sign-in.

Chromium trusts the stack's development certificate by its public key
(``--ignore-certificate-errors-spki-list``), and only after the test has checked that the certificate
each server presents was issued by the stack's own CA: every other TLS error still fails the test.
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from tests.prerequisites import require_file

CHROMIUM = Path("/usr/bin/chromium")
USER_DOMAIN = "contoso-dev.example"
# Enough for a cold sign-in through devidp, oauth2-proxy and the verifier on a busy 2-core machine.
STEP_TIMEOUT_MS = 15_000
# Never download a browser: Debian's, with the flags a headless, offline, root-run Chromium needs.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


# --- trusting the stack's certificate --------------------------------------------------------------


def spki_sha256(cert: x509.Certificate) -> str:
    """Chromium's SPKI pin format: base64 of SHA-256 over the DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode("ascii")


def presented_certificate(origin: str) -> x509.Certificate:
    """The leaf certificate the server at ``origin`` presents (fetched without verification: it is
    checked against the stack's CA by the caller before anything trusts it)."""
    parts = urlsplit(origin)
    assert parts.hostname and parts.port, origin
    pem = ssl.get_server_certificate(("127.0.0.1", parts.port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def trusted_spki_pins(origins: list[str], ca_file: Path) -> list[str]:
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    pins = []
    for origin in origins:
        cert = presented_certificate(origin)
        # Raises unless ``ca`` signed it: a certificate from anywhere else is never pinned.
        cert.verify_directly_issued_by(ca)
        pins.append(spki_sha256(cert))
    return sorted(set(pins))


# --- launching -------------------------------------------------------------------------------------


@contextmanager
def launched_chromium(stack: Any) -> Iterator[Browser]:
    """Chromium trusting exactly the certificates the stack's CA issued to its app and devidp."""
    require_file(CHROMIUM, "install Debian's chromium package")
    topology = stack.topology
    pins = trusted_spki_pins([topology.public_origin, topology.devidp_origin], Path(stack.ca_file))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={','.join(pins)}"],
        )
        # Web-first assertions wait this long too (their default of 5 s is tight for a cold sign-in).
        expect.set_options(timeout=STEP_TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def fresh_context(browser: Browser, *, height: int) -> Iterator[BrowserContext]:
    """A new profile: no cookie from another test's sign-in."""
    context = browser.new_context(viewport={"width": 1280, "height": height}, locale="en-US")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


# --- signing in -----------------------------------------------------------------------------------------


def upn(name: str) -> str:
    return f"{name}@{USER_DOMAIN}"


def password(name: str) -> str:
    # devidp/example.toml's development passwords.
    return f"{name}-password"


def expect_sign_in_page(page: Page, site: dict[str, str]) -> None:
    expect(page).to_have_url(re.compile("^" + re.escape(site["idp"]) + "/"))
    expect(page.get_by_role("heading", name=re.compile(r"^Sign in to "))).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()


def sign_in(page: Page, site: dict[str, str], name: str, *, path: str = "/") -> None:
    """Open the site signed out, land on devidp's sign-in page, type the password, come back."""
    page.goto(site["app"] + path)
    expect_sign_in_page(page, site)
    page.get_by_label("Username").fill(upn(name))
    page.get_by_label("Password").fill(password(name))
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(site["app"] + path)
    expect(page.get_by_test_id("me-email")).to_have_text(upn(name))
    # The project list has loaded too: no request of the first page load is still in flight.
    expect(page.get_by_text(re.compile(r"^\d+ in total$"))).to_be_visible()


def api_fetch(
    page: Page, method: str, path: str, *, body: Any = None, csrf: str | None = None
) -> dict[str, Any]:
    """A request the page's own script could make: same origin, the browser adds the cookie."""
    return page.evaluate(
        """async ({method, path, body, csrf}) => {
            const headers = {"Content-Type": "application/json"};
            if (csrf !== null) headers["X-CSRF-Token"] = csrf;
            const response = await fetch(path, {
                method, headers, credentials: "same-origin",
                body: body === null ? undefined : JSON.stringify(body),
            });
            let json = null;
            try { json = await response.json(); } catch {}
            return {status: response.status, body: json, csrf: response.headers.get("X-CSRF-Token")};
        }""",
        {"method": method, "path": path, "body": body, "csrf": csrf},
    )


def browser_storage(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
            cookie: document.cookie,
            local: Object.fromEntries(Object.entries(localStorage)),
            session: Object.fromEntries(Object.entries(sessionStorage)),
        })"""
    )


def create_project(page: Page, name: str, description: str = "") -> Locator:
    """Create project ``name`` with the page's "New project" form; its row in the table, once shown."""
    form = page.get_by_role("form", name="New project")
    form.get_by_label("Name").fill(name)
    if description:
        form.get_by_label("Description").fill(description)
    form.get_by_role("button", name="Create project").click()
    row = page.get_by_role("row", name=re.compile(re.escape(name)))
    expect(row).to_have_count(1)
    return row
