"""Pure rendering: a :class:`~stack.topology.Topology` in, configuration texts and environments out.

No I/O happens here (the template texts are passed in), so every rule about what each component is
told can be unit-tested without starting anything. :mod:`stack.processes` writes the results into
the run folder and starts the programs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from devidp.config import move_app_origin
from fastapi_app.revalidation import REVALIDATED_ROUTES
from stack.topology import SECOND_TENANT_ID, Topology

#: Every ``*.template`` here renders into one file of nginx's configuration (its name without
#: ``.template``); ``edge.conf`` is the server, the ``*.inc`` files are the parts it includes.
NGINX_DIR = Path("nginx")
NGINX_TEMPLATE = NGINX_DIR / "edge.conf.template"
#: Where the rendered files live, relative to the folder of nginx's main configuration (nginx reads
#: a relative ``include`` from there): the edge image's template step writes to /etc/nginx/conf.d.
NGINX_PARTS_DIR = "conf.d"
#: oauth2-proxy reads two files, both rendered from :func:`oauth2_proxy_values`: the core options
#: (``--config``) and its alpha configuration (``--alpha-config``: the provider with the sign-in's
#: allowed ``claims``, the headers /oauth2/auth answers, its servers and upstream).
OAUTH2_PROXY_TEMPLATE = Path("oauth2-proxy") / "oauth2-proxy.cfg.template"
OAUTH2_PROXY_ALPHA_TEMPLATE = Path("oauth2-proxy") / "oauth2-proxy.alpha.yaml.template"


class TemplateError(Exception):
    """A template names a variable nobody supplied (or a value would break the file)."""


def placeholders(text: str, prefix: str) -> set[str]:
    """Every ``${PREFIX_NAME}`` the template uses."""
    return set(re.findall(r"\$\{(" + re.escape(prefix) + r"[A-Z0-9_]+)\}", text))


def render_template(text: str, values: Mapping[str, str], prefix: str) -> str:
    """Substitute ``${PREFIX_*}`` names only, like ``envsubst`` with a filter.

    nginx's own ``$variables`` and any ``${OTHER}`` stay as they are. A missing name is an error (a
    silently empty ``listen`` or upstream would make a broken but running proxy); so is a value with
    a newline, which could smuggle extra directives into the file.
    """
    missing = sorted(placeholders(text, prefix) - set(values))
    if missing:
        raise TemplateError(f"no value for {', '.join(missing)}")
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            raise TemplateError(f"{name} contains a line break")

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return re.sub(r"\$\{(" + re.escape(prefix) + r"[A-Z0-9_]+)\}", substitute, text)


# --- nginx ---------------------------------------------------------------------------------------


def edge_values(topo: Topology) -> dict[str, str]:
    """The EDGE_* values for the local stack (TLS on nginx itself, logs to a file)."""
    return {
        "EDGE_LISTEN": f"{topo.bind_host}:{topo.nginx_port} ssl",
        "EDGE_TLS_CONF_GLOB": str(topo.conf_dir / "nginx-tls.conf"),
        "EDGE_SERVER_NAME": topo.public_hostname,
        "EDGE_PUBLIC_HOST": topo.public_host,
        "EDGE_OAUTH2_PROXY_ADDR": topo.oauth2_proxy_addr,
        "EDGE_VERIFIER_ADDR": topo.verifier_addr,
        "EDGE_API_ADDR": topo.api_addr,
        "EDGE_SPA_ROOT": str(topo.spa_root),
        "EDGE_ACCESS_LOG": str(topo.logs_dir / "nginx-access.log"),
        "EDGE_SPAN_LOG": edge_span_log(topo),
        "EDGE_REAL_IP_FROM": "127.0.0.1/32",
        # Short locally: a browser that visits https://localhost once should not be pinned to TLS
        # on every localhost port for a year.
        "EDGE_HSTS": "max-age=300",
        "EDGE_AUTHORITY_ORIGIN": topo.devidp_origin,
        "EDGE_SIGN_OUT_URL": topo.sign_out_url,
    }


def edge_span_log(topo: Topology) -> str:
    """Where nginx writes its span of each request: to the verifier's span relay as syslog (UDP) when
    tracing is on, nowhere otherwise (an ``access_log`` needs a target even when it is unused)."""
    if not topo.tracing:
        return "/dev/null"
    return f"syslog:server={topo.span_relay_addr},nohostname,tag=edge_span"


def nginx_files(templates: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """Each of the edge's files (``edge.conf`` and its parts) rendered, by file name."""
    return {name: render_template(text, values, "EDGE_") for name, text in templates.items()}


_INCLUDE = re.compile(r"^(?P<indent>[ \t]*)include " + NGINX_PARTS_DIR + r"/(?P<name>[\w.-]+);[^\n]*\n", re.M)


def inline_includes(files: Mapping[str, str], name: str = "edge.conf") -> str:
    """``name`` with each ``include conf.d/<part>;`` replaced by the part's text, indented as the
    include was: the configuration as nginx reads it, as one text (for tests and reviews)."""

    def part(match: re.Match[str]) -> str:
        indent = match.group("indent")
        text = inline_includes(files, match.group("name"))
        return "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))

    return _INCLUDE.sub(part, files[name])


def nginx_tls_conf(cert: Path, key: Path) -> str:
    return (
        f"ssl_certificate {cert};\n"
        f"ssl_certificate_key {key};\n"
        "ssl_protocols TLSv1.2 TLSv1.3;\n"
        "ssl_session_cache shared:edge_tls:1m;\n"
    )


def nginx_main_conf(topo: Topology, edge_conf: Path, *, running_as_root: bool) -> str:
    """The wrapper the official image provides in containers: pid, temp paths, events, http{}.

    Everything nginx writes stays in the run folder, so it runs unprivileged and beside a system
    nginx. As root, nginx would hand its workers to ``nobody``, who cannot read a private run folder;
    the workers then stay root, acceptable for a development stack bound to 127.0.0.1 only.
    """
    run = topo.run_dir / "nginx"
    user = "user root;\n" if running_as_root else ""
    return (
        f"{user}"
        "worker_processes 2;\n"
        f"pid {run / 'nginx.pid'};\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n"
        "    keepalive_timeout 65;\n"
        f"    client_body_temp_path {run / 'client_body'};\n"
        f"    proxy_temp_path {run / 'proxy'};\n"
        f"    fastcgi_temp_path {run / 'fastcgi'};\n"
        f"    uwsgi_temp_path {run / 'uwsgi'};\n"
        f"    scgi_temp_path {run / 'scgi'};\n"
        f"    include {edge_conf};\n"
        "}\n"
    )


# --- oauth2-proxy --------------------------------------------------------------------------------


def oauth2_proxy_values(topo: Topology, ca_file: Path) -> dict[str, str]:
    """The ``${O2P_*}`` values of both of oauth2-proxy's templates."""
    return {
        "O2P_HTTP_ADDRESS": topo.oauth2_proxy_addr,
        "O2P_TRUSTED_PROXY_IP": f"{topo.bind_host}/32",
        "O2P_OIDC_ISSUER_URL": topo.oidc_issuer,
        "O2P_CLIENT_ID": topo.bff_client_id,
        "O2P_REDIRECT_URL": topo.redirect_url,
        "O2P_SCOPE": topo.scope,
        "O2P_WHITELIST_DOMAIN": topo.public_host,
        "O2P_COOKIE_NAME": topo.session_cookie_name,
        "O2P_COOKIE_REFRESH": f"{topo.cookie_refresh_seconds}s",
        "O2P_COOKIE_EXPIRE": f"{topo.cookie_expire_seconds}s",
        "O2P_REDIS_URL": topo.redis_url,
        "O2P_PROVIDER_CA_FILE": str(ca_file),
    }


def oauth2_proxy_env(client_secret: str, cookie_secret: str) -> dict[str, str]:
    """Secrets go in the environment, never in the rendered files (the same as on ECS); oauth2-proxy
    substitutes the client secret into its alpha configuration as it loads it."""
    return {"OAUTH2_PROXY_CLIENT_SECRET": client_secret, "OAUTH2_PROXY_COOKIE_SECRET": cookie_secret}


def oauth2_proxy_metrics_env(topo: Topology) -> dict[str, str]:
    """Where oauth2-proxy serves /metrics, which its alpha configuration reads from the environment
    as compose and ECS set it (with an alpha file it takes no ``--metrics-address``); empty, not
    unset, turns it off, so a value in the caller's environment cannot turn it on."""
    port = topo.oauth2_proxy_metrics_port
    return {"OAUTH2_PROXY_METRICS_ADDRESS": "" if port is None else f"{topo.bind_host}:{port}"}


# --- devidp --------------------------------------------------------------------------------------


def devidp_config_text(example_text: str, topo: Topology) -> str:
    """devidp/example.toml with the edge's redirect URIs and front-channel logout URL (the BFF's
    ``web.logoutUrl``) moved to this stack's public origin; the sign-out test app's loopback URLs
    (``http://127.0.0.1:8981/...``) are left as they are."""
    return move_app_origin(example_text, topo.public_origin)


def devidp_args(topo: Topology, config: Path, cert: Path, key: Path) -> list[str]:
    args = [
        "-m", "devidp",
        "--config", str(config),
        "--host", topo.bind_host,
        "--port", str(topo.devidp_port),
        "--tls-cert", str(cert),
        "--tls-key", str(key),
        "--public-url", topo.devidp_origin,
    ]  # fmt: skip
    if topo.access_token_lifetime_seconds is not None:
        args += ["--access-token-lifetime", str(topo.access_token_lifetime_seconds)]
    return args


# --- verifier and FastAPI ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Secrets:
    """Per-run secrets: made fresh for every run folder, kept in it with mode 0600."""

    identity_signing_key: str
    cookie_secret: str


def validation_env(topo: Topology, ca_file: Path) -> dict[str, str]:
    """The VERIFIER_* token rules; FastAPI reads the same ones for its re-validation."""
    return {
        # The second tenant is deliberately absent: its tokens are "another tenant".
        "VERIFIER_TENANT_IDS": topo.tenant_id,
        "VERIFIER_AUTHORITY": topo.devidp_origin,
        "VERIFIER_V1_ISSUER_BASE": topo.devidp_origin,
        "VERIFIER_ISSUER_VERSIONS": "v1,v2",
        "VERIFIER_AUDIENCES": f"{topo.api_app_id_uri},{topo.api_app_id}",
        "VERIFIER_LEEWAY_SECONDS": str(topo.verifier_leeway_seconds),
        "VERIFIER_CA_FILE": str(ca_file),
    }


def tracing_env(topo: Topology) -> dict[str, str]:
    """The OpenTelemetry SDK's settings of the verifier and the API: export to the topology's OTLP
    endpoint over HTTP/protobuf, a batch every 200 ms (the SDK's default is 5 s, longer than a test
    wants to wait for a trace). Empty when tracing is off."""
    if topo.otlp_endpoint is None:
        return {}
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": topo.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def verifier_env(topo: Topology, ca_file: Path, secrets: Secrets) -> dict[str, str]:
    # With tracing on, the verifier also relays nginx's spans (see edge_span_log).
    edge_spans = {"VERIFIER_EDGE_SPANS_LISTEN": topo.span_relay_addr} if topo.tracing else {}
    return {
        **validation_env(topo, ca_file),
        "IDENTITY_SIGNING_KEY": secrets.identity_signing_key,
        "VERIFIER_HOST": topo.bind_host,
        "VERIFIER_PORT": str(topo.verifier_port),
        "VERIFIER_METRICS_PORT": str(topo.verifier_metrics_port),
        "VERIFIER_OAUTH2_PROXY_URL": topo.oauth2_proxy_url,
        "VERIFIER_SESSION_COOKIE_NAME": topo.session_cookie_name,
        "VERIFIER_REDIS_URL": topo.redis_client_url,
        "VERIFIER_PUBLIC_ORIGIN": topo.public_origin,
        # The absolute session lifetime: what oauth2-proxy's cookie_expire only appears to be.
        "VERIFIER_SESSION_MAX_AGE_SECONDS": str(topo.cookie_expire_seconds),
        "VERIFIER_LOG_LEVEL": "info",
        # The API's own list: the endpoints that re-validate the token, the only ones that get it.
        "VERIFIER_REVALIDATED_ROUTES": ", ".join(REVALIDATED_ROUTES),
        **tracing_env(topo),
        **edge_spans,
    }


def api_database_env(topo: Topology, postgres_url: str | None = None) -> dict[str, str]:
    """Where the API keeps its data: the PostgreSQL cluster's URL, or a SQLite file in the run folder."""
    if topo.database == "postgres":
        if postgres_url is None:
            raise TemplateError("the stack uses PostgreSQL but no database URL was given")
        return {"API_DATABASE_URL": postgres_url}
    return {"API_DATABASE_PATH": str(topo.run_dir / "api.sqlite3")}


def api_env(
    topo: Topology, ca_file: Path, secrets: Secrets, *, postgres_url: str | None = None
) -> dict[str, str]:
    return {
        **validation_env(topo, ca_file),
        "IDENTITY_SIGNING_KEY": secrets.identity_signing_key,
        "API_HOST": topo.bind_host,
        "API_PORT": str(topo.api_port),
        **api_database_env(topo, postgres_url),
        "API_IDENTITY_MAX_AGE_SECONDS": str(topo.api_identity_max_age_seconds),
        "API_AUTHORITY_URL": topo.authority,
        "API_OPENAPI_CLIENT_ID": topo.spa_client_id,
        "API_SCOPE_PREFIX": topo.api_app_id_uri,
        # This task's verifier ends sessions for "sign out everywhere".
        "API_VERIFIER_URL": f"http://{topo.verifier_addr}",
        **tracing_env(topo),
    }


def oauth2_proxy_redis_args(topo: Topology, ca_file: Path) -> list[str]:
    """TLS to Redis checked against the development CA (ElastiCache's is in the system bundle)."""
    return [f"--redis-ca-path={ca_file}"] if topo.redis_tls else []


def oauth2_proxy_redis_env(topo: Topology) -> dict[str, str]:
    env = {"OAUTH2_PROXY_REDIS_PASSWORD": topo.redis_password} if topo.redis_password else {}
    if topo.redis_username:
        env["OAUTH2_PROXY_REDIS_USERNAME"] = topo.redis_username
    return env


#: Where production's Redis user and its rights are declared.
EDGE_STACK_TEMPLATE = Path("deploy") / "aws" / "edge-stack.template.yaml"


class _TemplateLoader(yaml.SafeLoader):
    """CloudFormation YAML with its intrinsic tags (``!Ref``, ``!Sub``, ...) read as plain values."""


_TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def elasticache_access_string(repo_root: Path) -> str:
    """The access string the CloudFormation template gives ElastiCache's app user (RedisAppUser),
    word for word, so the multi-task stack's Redis grants exactly what production's does."""
    text = (repo_root / EDGE_STACK_TEMPLATE).read_text(encoding="utf-8")
    template = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 (a SafeLoader; tags read as None)
    try:
        access = template["Resources"]["RedisAppUser"]["Properties"]["AccessString"]
    except (KeyError, TypeError) as exc:
        raise TemplateError(f"{EDGE_STACK_TEMPLATE} has no RedisAppUser AccessString") from exc
    if not isinstance(access, str) or access.split()[:1] != ["on"]:
        raise TemplateError(f"{EDGE_STACK_TEMPLATE}: RedisAppUser's AccessString must start with 'on'")
    return access


def redis_args(topo: Topology, data_dir: Path, tls_files: tuple[Path, Path] | None = None) -> list[str]:
    """Redis with an RDB snapshot on shutdown, so a restarted Redis still holds the sessions.

    With ``topo.redis_tls`` it listens with TLS only (``tls_files`` is the certificate and key) and,
    with ``topo.redis_password``, asks every client for it: what ElastiCache's in-transit encryption
    and AUTH do. The password is passed on the command line, readable only by this user's processes
    on a development machine; production never runs this.
    """
    if topo.redis_tls:
        if tls_files is None:
            raise TemplateError("Redis with TLS needs a certificate and key")
        cert, key = tls_files
        listen = [
            "--port", "0",
            "--tls-port", str(topo.redis_port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-auth-clients", "no",
        ]  # fmt: skip
    else:
        listen = ["--port", str(topo.redis_port)]
    auth = ["--requirepass", topo.redis_password] if topo.redis_password else []
    if topo.redis_username:
        if not topo.redis_password:
            raise TemplateError("a Redis user needs the password it signs in with")
        # The same rules ElastiCache applies (ACL SETUSER syntax), plus the password.
        rules = elasticache_access_string(topo.repo_root).split()
        auth += ["--user", topo.redis_username, *rules, f">{topo.redis_password}"]
    return [
        "--bind", topo.bind_host,
        *listen,
        *auth,
        "--protected-mode", "yes",
        "--dir", str(data_dir),
        "--dbfilename", "sessions.rdb",
        "--save", "3600 1",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip


__all__ = [
    "NGINX_DIR",
    "NGINX_PARTS_DIR",
    "NGINX_TEMPLATE",
    "OAUTH2_PROXY_ALPHA_TEMPLATE",
    "OAUTH2_PROXY_TEMPLATE",
    "SECOND_TENANT_ID",
    "Secrets",
    "TemplateError",
    "api_database_env",
    "api_env",
    "devidp_args",
    "devidp_config_text",
    "edge_span_log",
    "edge_values",
    "inline_includes",
    "nginx_files",
    "nginx_main_conf",
    "nginx_tls_conf",
    "oauth2_proxy_env",
    "oauth2_proxy_metrics_env",
    "oauth2_proxy_redis_args",
    "oauth2_proxy_redis_env",
    "oauth2_proxy_values",
    "placeholders",
    "redis_args",
    "render_template",
    "tracing_env",
    "validation_env",
    "verifier_env",
]
