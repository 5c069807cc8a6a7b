"""Where everything in the local stack lives: the one source of truth for ports, URLs and names.

nginx, oauth2-proxy, the verifier, FastAPI and devidp are all configured from a :class:`Topology`
(see :mod:`stack.render`), and the end-to-end tests read the same object to know where to send
requests. The defaults are the fixed local values every part of the project documents; tests build
one on free ports with :func:`free_port_topology`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from verifier.core.identity import IDENTITY_HEADERS

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The devidp tenant, apps and secrets of ``devidp/example.toml``. These ids are fixed by the
#: project (the other parts rely on them); the file itself stays the only place users live.
PRIMARY_TENANT_ID = "7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
SECOND_TENANT_ID = "0b6c7d8e-9f01-4a23-b456-789abcdef012"
API_APP_ID = "5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57"
API_APP_ID_URI = f"api://{API_APP_ID}"
BFF_CLIENT_ID = "b7f3d1e2-6c4a-4b58-9e17-3d2c1a0f9e84"
#: Development-only secret registered in devidp/example.toml; production reads it from Secrets Manager.
BFF_CLIENT_SECRET = "bff-dev-secret-change-me"
SPA_CLIENT_ID = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
PUBLIC_CLIENT_ID = "d3e5f7a9-2b4c-4d6e-9f80-1a2b3c4d5e6f"
DAEMON_CLIENT_ID = "e4f6a8b0-3c5d-4e7f-a091-2b3c4d5e6f70"
DAEMON_CLIENT_SECRET = "daemon-dev-secret-change-me"

SESSION_COOKIE_NAME = "__Host-oauth2_proxy"
CSRF_HEADER = "X-CSRF-Token"
REQUEST_ID_HEADER = "X-Request-ID"
#: Where the verifier takes nginx's spans when tracing is on (Topology.span_relay_port).
SPAN_RELAY_PORT = 9200


@dataclass(frozen=True, slots=True)
class Topology:
    """Every address and name of one running stack. Frozen: a running stack never moves."""

    run_dir: Path
    bind_host: str = "127.0.0.1"
    public_hostname: str = "localhost"
    nginx_port: int = 8443
    devidp_port: int = 8900
    oauth2_proxy_port: int = 4180
    verifier_port: int = 9000
    verifier_metrics_port: int = 9100
    #: oauth2-proxy's own /metrics (its metrics_address); off when None, as in `make run`.
    oauth2_proxy_metrics_port: int | None = None
    api_port: int = 8000
    redis_port: int = 6380
    #: The API's database: "sqlite" (a file in the run folder, the default) or "postgres" (a
    #: throw-away PostgreSQL cluster on ``postgres_port``, see stack.postgres).
    database: str = "sqlite"
    postgres_port: int = 5433
    repo_root: Path = REPO_ROOT
    devidp_config: Path = REPO_ROOT / "devidp" / "example.toml"
    spa_root: Path = REPO_ROOT / "spa" / "dist"
    tenant_id: str = PRIMARY_TENANT_ID
    api_app_id: str = API_APP_ID
    api_app_id_uri: str = API_APP_ID_URI
    bff_client_id: str = BFF_CLIENT_ID
    spa_client_id: str = SPA_CLIENT_ID
    session_cookie_name: str = SESSION_COOKIE_NAME
    identity_headers: tuple[str, ...] = IDENTITY_HEADERS
    #: Lifetimes. Production values by default; the refresh test shortens them.
    access_token_lifetime_seconds: int | None = None  # None: whatever devidp's config says
    cookie_refresh_seconds: int = 15 * 60
    cookie_expire_seconds: int = 60 * 60
    verifier_leeway_seconds: int = 60
    api_identity_max_age_seconds: int = 30
    #: Delegated scopes the session asks for, so its access token is one for our API. All of the
    #: API's scopes: a scope only lets the app act for the user; the user's app role still decides
    #: (deleting needs the Admin role as well as the `admin` scope).
    api_scopes: tuple[str, ...] = ("user.read", "user.write", "admin")
    extra_env: tuple[tuple[str, str], ...] = field(default=())
    #: The port browsers use when a load balancer sits in front (the multi-task stack, see
    #: stack.scaleout); None: nginx's own port is the public one.
    public_port: int | None = None
    #: Where the CA, certificates and secrets live when several tasks share them (the multi-task
    #: stack); None: the run folder itself.
    shared_dir: Path | None = None
    #: Redis as ElastiCache runs it in production: TLS in transit (certificate from the development
    #: CA) and a password. Off for `make run`; the multi-task stack turns it on.
    redis_tls: bool = False
    redis_password: str | None = field(default=None, repr=False)
    #: The Redis user oauth2-proxy and the verifier sign in as, with the password above and exactly
    #: the rights the CloudFormation template grants ElastiCache's user (stack.render.redis_args);
    #: None: the default user. The default user keeps every right, for operators and tests.
    redis_username: str | None = None
    #: Traces: where the verifier and the API export theirs (OTLP over HTTP/protobuf, e.g. a
    #: stack.jaeger.Jaeger's ``otlp_endpoint``); None, as in `make run`, turns tracing off.
    otlp_endpoint: str | None = None
    #: With tracing on, nginx's span of each request goes as a syslog line (UDP) to this port, where
    #: the verifier turns it into an OTLP span (nginx has no exporter of its own).
    span_relay_port: int = SPAN_RELAY_PORT

    # --- derived addresses -------------------------------------------------------------------
    @property
    def public_host(self) -> str:
        port = self.public_port if self.public_port is not None else self.nginx_port
        return self.public_hostname if port == 443 else f"{self.public_hostname}:{port}"

    @property
    def public_origin(self) -> str:
        return f"https://{self.public_host}"

    @property
    def devidp_origin(self) -> str:
        return f"https://{self.public_hostname}:{self.devidp_port}"

    @property
    def authority(self) -> str:
        """The tenant authority, as MSAL and the docs page use it."""
        return f"{self.devidp_origin}/{self.tenant_id}"

    @property
    def oidc_issuer(self) -> str:
        return f"{self.authority}/v2.0"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def redirect_url(self) -> str:
        return f"{self.public_origin}/oauth2/callback"

    @property
    def sign_out_url(self) -> str:
        """The provider's front-channel logout, returning to our front page."""
        back = quote(self.public_origin + "/", safe="")
        query = f"client_id={self.bff_client_id}&post_logout_redirect_uri={back}"
        return f"{self.authority}/oauth2/v2.0/logout?{query}"

    @property
    def oauth2_proxy_addr(self) -> str:
        return f"{self.bind_host}:{self.oauth2_proxy_port}"

    @property
    def oauth2_proxy_url(self) -> str:
        return f"http://{self.oauth2_proxy_addr}"

    @property
    def verifier_addr(self) -> str:
        return f"{self.bind_host}:{self.verifier_port}"

    @property
    def verifier_url(self) -> str:
        return f"http://{self.verifier_addr}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.bind_host}:{self.verifier_metrics_port}"

    @property
    def api_addr(self) -> str:
        return f"{self.bind_host}:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_addr}"

    @property
    def redis_url(self) -> str:
        """Redis without its password (oauth2-proxy's file; the password goes in its environment)."""
        scheme = "rediss" if self.redis_tls else "redis"
        return f"{scheme}://{self.bind_host}:{self.redis_port}/0"

    @property
    def redis_client_url(self) -> str:
        """The verifier's Redis URL: with the password and the CA to check the server with.

        A secret: it goes in the verifier's environment only (on ECS, from Secrets Manager).
        """
        return self._redis_url_as(self.redis_username)

    @property
    def redis_admin_url(self) -> str:
        """Redis as its default user, who may do anything (tests and operators, never a service)."""
        return self._redis_url_as(None)

    def _redis_url_as(self, username: str | None) -> str:
        if not self.redis_tls:
            return self.redis_url
        user = quote(username, safe="") if username else ""
        auth = f"{user}:{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        ca = quote(str(self.tls_dir / "dev-ca.pem"), safe="/")
        return f"rediss://{auth}{self.bind_host}:{self.redis_port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"

    @property
    def scope(self) -> str:
        """oauth2-proxy's scope: OpenID scopes plus the API's, so the session holds an API token."""
        api = " ".join(f"{self.api_app_id_uri}/{s}" for s in self.api_scopes)
        return f"openid profile email offline_access {api}"

    def ports(self) -> dict[str, int]:
        """Every listening port by component name, for the port-taken check and the banner."""
        ports = {
            "nginx": self.nginx_port,
            "devidp": self.devidp_port,
            "oauth2-proxy": self.oauth2_proxy_port,
            "verifier": self.verifier_port,
            "verifier metrics": self.verifier_metrics_port,
            "FastAPI": self.api_port,
            "Redis": self.redis_port,
        }
        if self.database == "postgres":
            ports["PostgreSQL"] = self.postgres_port
        if self.tracing:
            ports["verifier edge spans (UDP)"] = self.span_relay_port
        return ports

    @property
    def tracing(self) -> bool:
        return self.otlp_endpoint is not None

    @property
    def span_relay_addr(self) -> str:
        return f"{self.bind_host}:{self.span_relay_port}"

    # --- run folder layout ---------------------------------------------------------------------
    @property
    def tls_dir(self) -> Path:
        return (self.shared_dir or self.run_dir) / "tls"

    @property
    def secrets_path(self) -> Path:
        return (self.shared_dir or self.run_dir) / "secrets.json"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def conf_dir(self) -> Path:
        return self.run_dir / "conf"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def distinct_free_ports(count: int, taken: set[int] | None = None) -> list[int]:
    """``count`` free ports, none repeated and none in ``taken`` (which records them as taken)."""
    taken = set() if taken is None else taken
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken:
            taken.add(port)
            ports.append(port)
    return ports


def free_port_topology(run_dir: Path, **overrides: object) -> Topology:
    """A topology on kernel-chosen free ports, for tests that run beside a ``make run`` stack."""
    taken: set[int] = set()
    nginx, devidp, o2p, verifier, metrics, api, redis = sorted(distinct_free_ports(7, taken))
    (span_relay,) = distinct_free_ports(1, taken)
    base = Topology(
        run_dir=run_dir,
        nginx_port=nginx,
        devidp_port=devidp,
        oauth2_proxy_port=o2p,
        verifier_port=verifier,
        verifier_metrics_port=metrics,
        api_port=api,
        redis_port=redis,
        span_relay_port=span_relay,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def base_port_topology(run_dir: Path, base_port: int) -> Topology:
    """All seven ports counted up from ``base_port`` (``python -m stack up --base-port N``)."""
    return Topology(
        run_dir=run_dir,
        nginx_port=base_port,
        devidp_port=base_port + 1,
        oauth2_proxy_port=base_port + 2,
        verifier_port=base_port + 3,
        verifier_metrics_port=base_port + 4,
        api_port=base_port + 5,
        redis_port=base_port + 6,
    )
