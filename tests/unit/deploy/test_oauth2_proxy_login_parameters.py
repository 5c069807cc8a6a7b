"""The sign-in URL oauth2-proxy builds, from the real binary run the way its image runs it: the ECS
environment rendered into both templates by the image's entrypoint, against a local Redis with
ElastiCache's ACL scheme and a local OpenID discovery document standing in for Entra.

The step-up sign-in (`/oauth2/start?rd=<path>&claims=<JSON>`) passes exactly one shape of Entra's
`claims` on to the authorize request: the client capability cp1 plus one essential authentication
context c1..c99. Every other value, and a sign-in without one, carries the default that only declares
cp1. The options that moved to the alpha file keep their behaviour: PKCE S256, the nonce, the scope
and redirect URI, /metrics, and the headers /oauth2/auth answers the verifier with.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis import Redis

from tests.prerequisites import require_file
from tests.support.servers import serving
from tests.unit.deploy.conftest import (
    OAUTH2_PROXY_ENTRYPOINT,
    REDIS_PASSWORD,
    REDIS_USER,
    ecs_environment,
    free_port,
    oauth2_proxy_entrypoint_files,
    running_acl_redis,
)
from tests.unit.verifier_session.oauth2_proxy_cookie import Ticket, session_state

pytestmark = pytest.mark.usefixtures("oauth2_proxy_prerequisites")

#: What every sign-in asks for: the client capability cp1 only.
DEFAULT_CLAIMS = '{"access_token":{"xms_cc":{"values":["cp1"]}}}'
COOKIE_SECRET = "0123456789abcdef0123456789abcdef"


#: The claims value the SPA sends for a step-up, compact, keys in this order.
STEP_UP = '{"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"CONTEXT"}}}'


def step_up(context: str) -> str:
    """The step-up claims value for authentication context ``context``."""
    return STEP_UP.replace("CONTEXT", context)


class _Discovery(http.server.BaseHTTPRequestHandler):
    """An OpenID provider's discovery document and nothing else: oauth2-proxy reads it at start; the
    sign-in URL is built from it without calling the provider again."""

    def do_GET(self) -> None:
        issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path != "/.well-known/openid-configuration":
            self.send_error(404)
            return
        body = json.dumps(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/keys",
                "response_types_supported": ["code"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class RunningOAuth2Proxy:
    url: str
    metrics_url: str
    issuer: str
    env: Mapping[str, str]
    redis_port: int

    def start_sign_in(self, **query: str) -> dict[str, list[str]]:
        """GET /oauth2/start with ``query``; the query of the authorize request it redirects to."""
        answer = httpx.get(f"{self.url}/oauth2/start", params=query, follow_redirects=False)
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == f"{self.issuer}/authorize"
        return parse_qs(location.query, keep_blank_values=True, strict_parsing=True)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"oauth2-proxy exited with status {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"oauth2-proxy did not answer /ready within 30 s:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def oauth2_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    renderer: ModuleType,
    taskdef_template: dict[str, Any],
    example_values: dict[str, str],
) -> Iterator[RunningOAuth2Proxy]:
    folder = tmp_path_factory.mktemp("oauth2-proxy")
    task = renderer.render(taskdef_template, example_values)
    (container,) = (c for c in task["containerDefinitions"] if c["name"] == "oauth2-proxy")
    with (
        serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)) as discovery,
        running_acl_redis(folder) as redis_port,
    ):
        issuer = f"http://127.0.0.1:{discovery.server_address[1]}"
        address, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        env = {
            **ecs_environment(container),
            **oauth2_proxy_entrypoint_files(folder),
            "O2P_HTTP_ADDRESS": address,
            "O2P_OIDC_ISSUER_URL": issuer,
            "O2P_REDIS_URL": f"redis://127.0.0.1:{redis_port}",
            "OAUTH2_PROXY_METRICS_ADDRESS": metrics,
            "OAUTH2_PROXY_REDIS_USERNAME": REDIS_USER,
            "OAUTH2_PROXY_REDIS_PASSWORD": REDIS_PASSWORD,
            "OAUTH2_PROXY_CLIENT_SECRET": "test-only-client-secret",
            "OAUTH2_PROXY_COOKIE_SECRET": COOKIE_SECRET,
        }
        require_file(Path(env["O2P_PROVIDER_CA_FILE"]), "install Debian's ca-certificates")
        log = folder / "oauth2-proxy.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                ["sh", str(OAUTH2_PROXY_ENTRYPOINT)],
                env={"PATH": "/usr/bin:/bin", **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_ready(f"http://{address}", process, log)
            yield RunningOAuth2Proxy(
                f"http://{address}", f"http://{metrics}/metrics", issuer, env, redis_port
            )
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_a_plain_sign_in_declares_the_client_capability_cp1(oauth2_proxy: RunningOAuth2Proxy):
    assert oauth2_proxy.start_sign_in()["claims"] == [DEFAULT_CLAIMS]
    assert oauth2_proxy.start_sign_in(rd="/projects")["claims"] == [DEFAULT_CLAIMS]


@pytest.mark.parametrize("context", ["c1", "c2", "c9", "c10", "c42", "c99"])
def test_the_step_up_form_is_passed_on_exactly(oauth2_proxy: RunningOAuth2Proxy, context: str):
    claims = step_up(context)
    assert oauth2_proxy.start_sign_in(rd="/", claims=claims)["claims"] == [claims]


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(step_up("c100"), id="context-c100"),
        pytest.param(step_up("c01"), id="leading-zero"),
        pytest.param(step_up("c0"), id="context-c0"),
        pytest.param(step_up("c"), id="no-number"),
        pytest.param(step_up("C1"), id="upper-case"),
        pytest.param(step_up("c1").replace('"cp1"', '"cp2"'), id="other-capability"),
        pytest.param(step_up("c1").replace('["cp1"]', '["cp1","cp2"]'), id="extra-capability"),
        pytest.param(step_up("c1").replace("true", "false"), id="not-essential"),
        pytest.param(
            step_up("c1")[:-1] + ',"id_token":{"acrs":{"essential":true,"value":"c1"}}}', id="extra-key"
        ),
        pytest.param(step_up("c1").replace("}}}", '},"amr":{"essential":true}}}'), id="extra-claim"),
        pytest.param(
            '{"access_token":{"acrs":{"essential":true,"value":"c1"},"xms_cc":{"values":["cp1"]}}}',
            id="other-key-order",
        ),
        pytest.param(json.dumps(json.loads(step_up("c1"))), id="not-compact"),
        pytest.param(step_up("c1") + "\n", id="trailing-newline"),
        pytest.param("x" + step_up("c1"), id="prefixed"),
        pytest.param(step_up("c1") + step_up("c1"), id="repeated"),
        pytest.param('{"access_token":{"acrs":{"essential":true,"value":"c1"}}}', id="without-cp1"),
        pytest.param("", id="empty"),
    ],
)
def test_any_other_claims_value_gets_the_default(oauth2_proxy: RunningOAuth2Proxy, claims: str):
    assert oauth2_proxy.start_sign_in(rd="/", claims=claims)["claims"] == [DEFAULT_CLAIMS]


def test_the_authorize_request_keeps_pkce_the_nonce_the_scope_and_the_redirect_uri(
    oauth2_proxy: RunningOAuth2Proxy,
):
    query = oauth2_proxy.start_sign_in(rd="/", claims=step_up("c1"))
    env = oauth2_proxy.env
    assert query["client_id"] == [env["O2P_CLIENT_ID"]]
    assert query["redirect_uri"] == [env["O2P_REDIRECT_URL"]]
    assert query["scope"] == [env["O2P_SCOPE"]]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43, "a base64url SHA-256"
    assert len(query["nonce"][0]) >= 32 and query["nonce"][0] != query["state"][0]
    # The legacy configuration's default, converted as it was.
    assert query["approval_prompt"] == ["force"]
    assert set(query) == {
        "approval_prompt", "claims", "client_id", "code_challenge", "code_challenge_method", "nonce",
        "redirect_uri", "response_type", "scope", "state",
    }  # fmt: skip


def test_the_metrics_server_listens_where_the_environment_says(oauth2_proxy: RunningOAuth2Proxy):
    answer = httpx.get(oauth2_proxy.metrics_url)
    assert answer.status_code == 200
    assert "oauth2_proxy_requests_total" in answer.text


def test_auth_answers_a_session_with_the_headers_the_verifier_reads(oauth2_proxy: RunningOAuth2Proxy):
    # A session stored as oauth2-proxy stores one after a sign-in, with the oid as user and email.
    oid = "9f1c2b7a-0d4e-4f3a-8b6c-5e2d1a0f9c83"
    now = int(time.time())
    ticket = Ticket.new(oauth2_proxy.env["O2P_COOKIE_NAME"])
    state = session_state(
        created_at=now, expires_on=now + 3600, access_token="at-of-the-session",
        id_token="id-token-of-the-session", email=oid, user=oid,
    )  # fmt: skip
    with Redis(port=oauth2_proxy.redis_port, username=REDIS_USER, password=REDIS_PASSWORD) as redis:
        redis.set(ticket.ticket_id, ticket.encrypt(state), ex=3600)
    cookie = f"{ticket.cookie_name}={ticket.cookie_value(COOKIE_SECRET, now)}"

    answer = httpx.get(f"{oauth2_proxy.url}/oauth2/auth", headers={"Cookie": cookie})

    assert answer.status_code == 202
    assert answer.headers["X-Auth-Request-User"] == oid
    assert answer.headers["X-Auth-Request-Email"] == oid
    assert answer.headers["X-Auth-Request-Access-Token"] == "at-of-the-session"
    assert answer.headers["Authorization"] == "Bearer id-token-of-the-session"


def test_auth_answers_401_without_a_session(oauth2_proxy: RunningOAuth2Proxy):
    answer = httpx.get(f"{oauth2_proxy.url}/oauth2/auth")
    assert answer.status_code == 401
    assert "X-Auth-Request-Access-Token" not in answer.headers
    assert "Authorization" not in answer.headers
