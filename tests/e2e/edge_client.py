"""An HTTP client that behaves like a browser where it matters, for the end-to-end tests.

It trusts only the stack's development CA, keeps cookies per host like a browser, and can walk the
whole sign-in (nginx -> oauth2-proxy -> devidp's form -> callback) one redirect at a time so tests can
look at every hop. It also fetches tokens from devidp the way Postman or a daemon would.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stack.launcher import Stack
from stack.topology import (
    API_APP_ID_URI,
    DAEMON_CLIENT_ID,
    DAEMON_CLIENT_SECRET,
    PRIMARY_TENANT_ID,
    PUBLIC_CLIENT_ID,
    SECOND_TENANT_ID,
    SESSION_COOKIE_NAME,
)
from tests.support.servers import serving

_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)
_ATTR = re.compile(r'(\w[\w-]*)\s*=\s*(?:"([^"]*)"|([^\s>]+))')
_INPUT = re.compile(r"<(input|button)\b([^>]*)>", re.I)


def _attrs(tag: str) -> dict[str, str]:
    return {
        m.group(1).lower(): unescape(m.group(2) if m.group(2) is not None else m.group(3))
        for m in _ATTR.finditer(tag)
    }


def password_form(html: str) -> tuple[str, dict[str, str]]:
    """The action and fields of devidp's "use a password" form."""
    return _form_with(html, "password", "the sign-in page")


def step_up_form(html: str) -> tuple[str, dict[str, str]]:
    """The action and fields of devidp's step-up page ("Verify your identity": the code in ``otc``)."""
    return _form_with(html, "otc", "the step-up page")


def _form_with(html: str, input_name: str, page: str) -> tuple[str, dict[str, str]]:
    for form in _FORM.findall(html):
        if f"name={input_name}" not in form and f'name="{input_name}"' not in form:
            continue
        action = _attrs(form[: form.index(">") + 1]).get("action", "")
        fields: dict[str, str] = {}
        for _kind, raw in _INPUT.findall(form):
            a = _attrs(raw)
            if "name" in a and a.get("type", "").lower() in ("hidden", "text", "password", "submit", ""):
                fields[a["name"]] = a.get("value", "")
        return action, fields
    raise AssertionError(f"no form with {input_name!r} in {page}:\n{html[:2000]}")


@dataclass
class Hop:
    method: str
    url: str
    status: int
    location: str
    set_cookies: list[str]
    headers: httpx.Headers = field(default_factory=httpx.Headers)


@dataclass
class SignIn:
    """A signed-in client and the hops that signed it in; ``with`` closes the client."""

    client: httpx.Client
    hops: list[Hop] = field(default_factory=list)

    def __enter__(self) -> SignIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    @property
    def final(self) -> Hop:
        return self.hops[-1]

    def session_set_cookie(self, cookie_name: str) -> str:
        for hop in self.hops:
            for line in hop.set_cookies:
                if line.startswith(cookie_name + "="):
                    return line
        raise AssertionError(f"no Set-Cookie for {cookie_name} in {[h.url for h in self.hops]}")


def ssl_context(stack: Stack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.ca_file))


def new_client(stack: Stack, **kwargs: object) -> httpx.Client:
    return httpx.Client(verify=ssl_context(stack), timeout=15.0, trust_env=False, **kwargs)  # type: ignore[arg-type]


def follow(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    max_hops: int = 12,
    stop_at: str | None = None,
    stop_before: str | None = None,
) -> list[Hop]:
    """Send a request and follow redirects by hand, recording every hop (up to one at ``stop_at``;
    a redirect to ``stop_before`` is recorded and not followed: a native client's loopback redirect)."""
    hops: list[Hop] = []
    for _ in range(max_hops):
        response = client.request(method, url, data=data, headers=headers)
        location = response.headers.get("location", "")
        set_cookies = response.headers.get_list("set-cookie")
        hops.append(Hop(method, url, response.status_code, location, set_cookies, response.headers))
        at_stop = stop_at is not None and url.startswith(stop_at)
        if at_stop or response.status_code not in (301, 302, 303, 307, 308) or not location:
            hops[-1].body = response.text  # type: ignore[attr-defined]
            return hops
        url = urljoin(url, location)
        method, data = "GET", None
        if stop_before is not None and url.startswith(stop_before):
            return hops
    raise AssertionError(f"more than {max_hops} redirects: {[h.url for h in hops]}")


def sign_out(client: httpx.Client, origin: str, *, public_origin: str | None = None) -> httpx.Response:
    """What the SPA's Sign out button does: a form POST from our own page, for which the browser sets
    ``Origin`` and ``Sec-Fetch-Site: same-origin`` (the edge's proof that this site asked).
    ``public_origin`` is the site's origin when ``origin`` reaches one task behind the balancer."""
    proof = {"Origin": public_origin or origin, "Sec-Fetch-Site": "same-origin"}
    return client.post(origin + "/oauth2/sign_out", headers=proof)


def sign_in(
    stack: Stack,
    username: str,
    password: str,
    *,
    start_path: str = "/",
    client: httpx.Client | None = None,
    stop_at_callback: bool = False,
) -> SignIn:
    """Sign in through nginx, oauth2-proxy and devidp's form, as a browser without JavaScript does.

    ``stop_at_callback`` stops after oauth2-proxy's answer to /oauth2/callback, so a test can look
    at where it would send the browser without following it.
    """
    client = client or new_client(stack)
    result = SignIn(client)
    callback = stack.topology.redirect_url if stop_at_callback else None
    t = stack.topology
    result.hops += sign_in_hops(
        client, t.public_origin + start_path, t.devidp_origin, username, password, stop_at=callback
    )
    return result


def sign_in_hops(
    client: httpx.Client,
    url: str,
    idp_origin: str,
    username: str,
    password: str,
    *,
    stop_at: str | None = None,
) -> list[Hop]:
    """Open ``url`` signed out, land on devidp's sign-in page at ``idp_origin``, submit the password
    and follow where it leads: every hop, for :func:`sign_in` and :func:`sign_in_at`."""
    hops = follow(client, "GET", url)
    page = hops[-1]
    assert page.status == 200, f"expected devidp's sign-in page, got {page.status} at {page.url}"
    assert page.url.startswith(idp_origin), page.url
    return hops + submit_password(client, page, username, password, stop_at=stop_at)


def submit_password(
    client: httpx.Client, page: Hop, username: str, password: str, *, stop_at: str | None = None
) -> list[Hop]:
    """Fill in devidp's sign-in ``page`` with a password and follow where it leads."""
    action, fields = password_form(page.body)  # type: ignore[attr-defined]
    fields.update({"username": username, "password": password, "signin": "password"})
    fields.pop("pick", None)
    fields.pop("cancel", None)
    return follow(client, "POST", urljoin(page.url, action), data=fields, stop_at=stop_at)


def session_cookie_attributes(set_cookie: str) -> dict[str, str | bool]:
    jar = SimpleCookie()
    jar.load(set_cookie)
    (morsel,) = jar.values()
    attrs: dict[str, str | bool] = {"value": morsel.value}
    for key in ("secure", "httponly", "samesite", "path", "domain", "expires", "max-age"):
        if morsel[key]:
            attrs[key] = morsel[key]
    return attrs


def clears_session_cookie(response: httpx.Response, name: str) -> bool:
    """Whether the first ``Set-Cookie`` for the session cookie ``name`` deletes it, as oauth2-proxy
    writes a deletion (``Max-Age=0``, or an ``Expires`` at the epoch)."""
    lines = [c.lower() for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    return bool(lines) and ("max-age=0" in lines[0] or "expires=thu, 01 jan 1970" in lines[0])


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --- tokens the way Postman and daemons get them ---------------------------------------------------


def token_endpoint(stack: Stack, tenant: str | None = None) -> str:
    t = stack.topology
    return f"{t.devidp_origin}/{tenant or t.tenant_id}/oauth2/v2.0/token"


def client_credentials_token(
    stack: Stack,
    *,
    client_id: str = DAEMON_CLIENT_ID,
    secret: str = DAEMON_CLIENT_SECRET,
    tenant: str | None = None,
) -> str:
    form = client_credentials_form(stack.topology.api_app_id_uri, client_id, secret)
    return _access_token(stack, tenant, form)


def client_credentials_form(
    api_app_id_uri: str, client_id: str = DAEMON_CLIENT_ID, secret: str = DAEMON_CLIENT_SECRET
) -> dict[str, str]:
    """The token request of a daemon (client credentials) for the API's application permissions."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": f"{api_app_id_uri}/.default",
    }


def password_token(
    stack: Stack,
    username: str,
    password: str,
    *,
    scope: str | None = None,
    tenant: str | None = None,
    client_id: str = PUBLIC_CLIENT_ID,
    claims: str | None = None,
) -> str:
    api = stack.topology.api_app_id_uri
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
        "scope": scope or f"{api}/user.read {api}/user.write",
    }
    if claims is not None:
        form["claims"] = claims
    return _access_token(stack, tenant, form)


# --- step-up (Conditional Access authentication context) --------------------------------------------

#: What a client that answers claims challenges declares (MSAL's client capabilities).
CP1_CLAIMS = '{"access_token":{"xms_cc":{"values":["cp1"]}}}'
#: Each user's step-up code in devidp's example tenant (its stand-in for MFA).
STEP_UP_CODES = {"alice": "246810", "bob": "135791", "carol": "314159"}
#: Where the public client's authorization code goes: Entra's loopback redirect for native apps.
LOOPBACK_REDIRECT = "http://localhost"


def step_up_claims(context: str = "c1") -> str:
    """The ``claims`` request for ``context`` that the SPA sends to /oauth2/start (and oauth2-proxy
    allows, exactly this shape), declaring cp1 as every BFF sign-in does."""
    return (
        '{"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"' + context + '"}}}'
    )


def submit_step_up(client: httpx.Client, page: Hop, code: str, **follow_options: str) -> list[Hop]:
    """Type ``code`` into devidp's step-up ``page`` and follow where it leads."""
    action, fields = step_up_form(page.body)  # type: ignore[attr-defined]
    fields.update({"otc": code, "verify": "1"})
    fields.pop("cancel", None)
    return follow(client, "POST", urljoin(page.url, action), data=fields, **follow_options)


def step_up_session(signed_in: httpx.Client, origin: str, code: str, *, context: str = "c1") -> list[Hop]:
    """What the SPA does with a claims challenge: /oauth2/start with the step-up ``claims``; devidp,
    still signed in, shows only its step-up page; the code; back through the callback with a new
    session. Every hop; the last is the SPA's page."""
    start = f"{origin}/oauth2/start?" + urlencode({"rd": "/", "claims": step_up_claims(context)})
    hops = follow(signed_in, "GET", start)
    page = hops[-1]
    assert page.status == 200 and "name=otc" in page.body, [(h.status, h.url) for h in hops]  # type: ignore[attr-defined]
    return hops + submit_step_up(signed_in, page, code)


def stepped_up_token(
    stack: Stack, username: str, password: str, code: str, *, context: str = "c1", scope: str | None = None
) -> str:
    """An access token whose sign-in satisfied ``context`` (``acrs``), for the Postman client: the
    authorization code flow with PKCE and the step-up ``claims``, through devidp's password form and
    step-up page, as MSAL does after a claims challenge."""
    api = stack.topology.api_app_id_uri
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    request = {
        "client_id": PUBLIC_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": LOOPBACK_REDIRECT,
        "scope": scope or f"{api}/user.read {api}/user.write {api}/admin",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(16),
        "claims": step_up_claims(context),
    }
    idp = f"{stack.topology.devidp_origin}/{stack.topology.tenant_id}"
    with new_client(stack) as client:
        hops = follow(client, "GET", f"{idp}/oauth2/v2.0/authorize?{urlencode(request)}")
        hops = submit_password(client, hops[-1], username, password)
        hops = submit_step_up(client, hops[-1], code, stop_before=LOOPBACK_REDIRECT)
        answer = query_of(hops[-1].location)
        assert answer.get("state") == request["state"] and "code" in answer, hops[-1].location
        form = {
            "grant_type": "authorization_code",
            "client_id": PUBLIC_CLIENT_ID,
            "code": answer["code"],
            "redirect_uri": LOOPBACK_REDIRECT,
            "code_verifier": verifier,
            "scope": request["scope"],
        }
        return token_from(client, token_endpoint(stack), form)


def forged(token: str) -> str:
    """``token`` with one character in the middle of its signature changed: still well formed, and
    never the same signature (the last base64url character has unused bits; a change there can give
    the same bytes or a non-canonical encoding, refused as ``bad_base64`` instead)."""
    signed, signature = token.rsplit(".", 1)
    middle = len(signature) // 2
    changed = "B" if signature[middle] != "B" else "C"
    return f"{signed}.{signature[:middle]}{changed}{signature[middle + 1 :]}"


def daemon_token_at(client: httpx.Client, idp_origin: str) -> str:
    """The example daemon's token (client credentials) from the devidp at ``idp_origin``: for
    deployments reached by address rather than through a :class:`Stack` (the container tests)."""
    url = f"{idp_origin}/{PRIMARY_TENANT_ID}/oauth2/v2.0/token"
    return token_from(client, url, client_credentials_form(API_APP_ID_URI))


def sign_in_at(client: httpx.Client, origin: str, idp_origin: str, username: str, password: str) -> None:
    """Sign ``client`` in to the edge at ``origin`` through devidp's password form, as a browser
    without script would, and check it came back with a session cookie."""
    hops = sign_in_hops(client, origin + "/", idp_origin, username, password)
    trail = [(h.status, h.url) for h in hops]
    assert hops[-1].status == 200 and hops[-1].url == origin + "/", trail
    assert any(c.startswith(SESSION_COOKIE_NAME + "=") for h in hops for c in h.set_cookies), trail


def _access_token(stack: Stack, tenant: str | None, form: dict[str, str]) -> str:
    with new_client(stack) as c:
        return token_from(c, token_endpoint(stack, tenant), form)


def token_from(client: httpx.Client, url: str, form: dict[str, str]) -> str:
    """The access token devidp's token endpoint at ``url`` answers ``form`` with (200 or the test fails)."""
    r = client.post(url, data=form)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def other_tenant_token(stack: Stack) -> str:
    return password_token(
        stack,
        "mallory@fabrikam-dev.example",
        "mallory-password",
        scope=f"{stack.topology.api_app_id_uri}/user.read",
        tenant=SECOND_TENANT_ID,
    )


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


# --- requests sent byte for byte ---------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower(), [])
        assert len(values) == 1, (name, values)
        return values[0]


def raw_request(
    stack: Stack,
    target: bytes,
    *,
    method: bytes = b"GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> RawResponse:
    """Send one request whose request line is exactly ``method target HTTP/1.1``, over TLS to nginx.

    HTTP clients normalise a path before sending it (httpx resolves ``..``, some re-encode ``%``), so
    a test about what nginx does with a raw path must write the request line itself.
    """
    all_headers = {"Host": stack.topology.public_host, "Connection": "close", **(headers or {})}
    if body:
        all_headers["Content-Length"] = str(len(body))
    head = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in all_headers.items())
    request = method + b" " + target + b" HTTP/1.1\r\n" + head + b"\r\n" + body
    context = ssl_context(stack)
    with socket.create_connection((stack.topology.bind_host, stack.topology.nginx_port), timeout=15) as raw:
        with context.wrap_socket(raw, server_hostname=stack.topology.public_hostname) as tls:
            tls.sendall(request)
            received = b""
            while chunk := tls.recv(65536):
                received += chunk
    head_bytes, _, payload = received.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    parsed: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        parsed.setdefault(name.strip().lower(), []).append(value.strip())
    if "chunked" in parsed.get("transfer-encoding", []):
        payload = _dechunk(payload)
    return RawResponse(int(lines[0].split(" ")[1]), parsed, payload)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


# --- what an upstream receives -------------------------------------------------------------------------


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]

    def names(self) -> set[str]:
        return {name.lower() for name, _ in self.headers}

    def value(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(values) <= 1, (name, values)
        return values[0] if values else None


@contextmanager
def upstream_recorder(
    stack: Stack,
    component: str,
    port: int,
    *,
    status: int = 200,
    answer_headers: dict[str, str] | None = None,
) -> Iterator[list[SeenRequest]]:
    """Stop ``component`` and listen on its port in its place, recording every request nginx sends.

    Answers ``status`` with an empty JSON object. The component is started again on exit, on the
    same port with the same configuration, and waited for until it answers.
    """
    seen: list[SeenRequest] = []

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append(SeenRequest(self.command, self.path, list(self.headers.items())))
            body = b"{}"
            self.send_response(status)
            for name, value in (answer_headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            # Never kept alive: nginx must not send a later request, meant for the real component,
            # down a connection to this stand-in.
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            return None

    stack.stop_component(component)
    try:
        with serving(ThreadingHTTPServer((stack.topology.bind_host, port), Recorder)):
            yield seen
    finally:
        stack.start_component(component)


def session_cache_counts(stack: Stack) -> tuple[float, float, float]:
    """A task's verifier so far: (session cache hits, misses, oauth2-proxy lookups that found a
    session)."""
    t = stack.topology
    text = httpx.get(f"http://{t.bind_host}:{t.verifier_metrics_port}/metrics", timeout=5).text
    hits = misses = lookups = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "verifier_session_cache_total":
                if sample.labels["result"] == "hit":
                    hits += sample.value
                else:
                    misses += sample.value
            elif sample.name == "verifier_upstream_duration_seconds_count" and sample.labels == {
                "upstream": "oauth2_proxy",
                "result": "ok",
            }:
                lookups += sample.value
    return hits, misses, lookups
