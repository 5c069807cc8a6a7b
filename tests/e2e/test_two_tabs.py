"""Sign-ins started in several tabs of one browser (one cookie jar) all finish, in any order.

Each tab opens a page while signed out, lands on devidp's sign-in page and is answered later, in the
order a test chooses. Every tab must end signed in on the page it started from, query string included,
and the browser must hold one working session afterwards: devidp binds each sign-in page's CSRF token
per transaction, oauth2-proxy keeps one CSRF cookie per login request (cookie_csrf_per_request) and
carries each tab's own redirect target in its state.

Two tabs are tried in both orders; five tabs in five representative orders (in order, reversed, and
three interleavings) rather than all 120, which would take minutes for no new path through the code.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from stack.launcher import Stack
from stack.topology import free_port_topology
from tests.e2e import edge_client

pytestmark = pytest.mark.e2e

USER, PASSWORD = "alice@contoso-dev.example", "alice-password"
ALICE_OID = "a11ce000-0000-4000-8000-000000000001"
FIVE_TAB_ORDERS = [(0, 1, 2, 3, 4), (4, 3, 2, 1, 0), (2, 4, 0, 3, 1), (1, 3, 0, 4, 2), (3, 0, 4, 1, 2)]
#: oauth2-proxy's login CSRF cookie lifetime in the stack that lets one expire (production: 10m).
SHORT_CSRF_SECONDS = 3


@dataclass(frozen=True)
class SignInTab:
    """A tab showing devidp's sign-in page, not yet answered."""

    start_path: str
    action: str
    fields: dict[str, str]


def start_path(n: int) -> str:
    # A deep path and a query string of two parameters, all of which must survive the round trip.
    return f"/orders/{n}?tab={n}&view=full"


def open_tab(stack: Stack, client: httpx.Client, path: str) -> SignInTab:
    hops = edge_client.follow(client, "GET", stack.topology.public_origin + path)
    page = hops[-1]
    assert page.status == 200 and page.url.startswith(stack.topology.devidp_origin), [
        (h.status, h.url) for h in hops
    ]
    action, fields = edge_client.password_form(page.body)  # type: ignore[attr-defined]
    fields.update({"username": USER, "password": PASSWORD, "signin": "password"})
    fields.pop("pick", None)
    fields.pop("cancel", None)
    return SignInTab(path, urljoin(page.url, action), fields)


def answer(client: httpx.Client, tab: SignInTab) -> list[edge_client.Hop]:
    return edge_client.follow(client, "POST", tab.action, data=tab.fields)


def assert_landed_on_start_page(stack: Stack, tab: SignInTab, hops: list[edge_client.Hop]) -> None:
    final = hops[-1]
    assert (final.status, final.url) == (200, stack.topology.public_origin + tab.start_path), [
        (h.status, h.url, h.location) for h in hops
    ]


def assert_one_working_session(stack: Stack, client: httpx.Client) -> None:
    name = stack.topology.session_cookie_name
    sessions = [c for c in client.cookies.jar if c.name == name]
    assert len(sessions) == 1, [c.name for c in client.cookies.jar]
    me = client.get(stack.topology.public_origin + "/api/me")
    assert me.status_code == 200, me.text
    assert (me.json()["oid"], me.json()["auth_source"]) == (ALICE_OID, "session")


def sign_in_in_tabs(stack: Stack, count: int, order: tuple[int, ...]) -> None:
    with edge_client.new_client(stack) as browser:
        tabs = [open_tab(stack, browser, start_path(n)) for n in range(count)]
        for n in order:
            assert_landed_on_start_page(stack, tabs[n], answer(browser, tabs[n]))
        assert_one_working_session(stack, browser)


@pytest.mark.parametrize("order", list(itertools.permutations(range(2))), ids=str)
def test_two_parallel_sign_ins_land_on_their_own_start_pages(stack: Stack, order: tuple[int, ...]) -> None:
    sign_in_in_tabs(stack, 2, order)


@pytest.mark.parametrize("order", FIVE_TAB_ORDERS, ids=str)
def test_five_parallel_sign_ins_land_on_their_own_start_pages(stack: Stack, order: tuple[int, ...]) -> None:
    sign_in_in_tabs(stack, 5, order)


# -- a sign-in page older than oauth2-proxy's CSRF cookie ------------------------------------------------


@pytest.fixture(scope="module")
def short_csrf_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose login CSRF cookie lives seconds, so one can expire during a test."""
    running = Stack(free_port_topology(Path(tmp_path_factory.mktemp("short-csrf"))))
    running.prepare()
    o2p = running.processes["oauth2-proxy"]
    o2p.env = {**o2p.env, "OAUTH2_PROXY_COOKIE_CSRF_EXPIRE": f"{SHORT_CSRF_SECONDS}s"}
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _live_csrf_cookies(client: httpx.Client) -> list[str]:
    return [c.name for c in client.cookies.jar if c.name.endswith("_csrf") and not c.is_expired()]


def test_sign_in_page_older_than_the_csrf_cookie_says_start_again_and_starting_again_works(
    short_csrf_stack: Stack,
) -> None:
    stack = short_csrf_stack
    with edge_client.new_client(stack) as browser:
        tab = open_tab(stack, browser, start_path(7))
        assert _live_csrf_cookies(browser), "oauth2-proxy set no login CSRF cookie"
        # The browser drops the cookie when its Max-Age runs out; wait for exactly that.
        assert edge_client.wait_until(
            lambda: not _live_csrf_cookies(browser), timeout=SHORT_CSRF_SECONDS + 30
        )

        late = answer(browser, tab)[-1]
        assert late.url.startswith(stack.topology.redirect_url), late.url
        assert late.status == 403
        assert "Please try again" in late.body  # type: ignore[attr-defined]

        again = edge_client.follow(browser, "GET", stack.topology.public_origin + tab.start_path)
        assert_landed_on_start_page(stack, tab, again)
        assert_one_working_session(stack, browser)
