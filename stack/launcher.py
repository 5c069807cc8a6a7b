"""The whole stack as one object: ``python -m stack up`` and the end-to-end tests both use :class:`Stack`.

``Stack(topology).start()`` renders every configuration into the run folder, makes the development
CA and a certificate for ``localhost``, then starts Redis, devidp, oauth2-proxy, the verifier,
FastAPI and nginx in that order (each waits for the ones before it: oauth2-proxy reads devidp's
discovery document at start-up), waiting until each one answers. Two components are optional: a
throw-away PostgreSQL when the topology asks for it, and Jaeger (stack.jaeger; first of all, so the
services' first spans have somewhere to go) when one is given for the topology's ``otlp_endpoint``.
:meth:`Stack.stop` stops them in reverse order; :meth:`Stack.stop_component` /
:meth:`Stack.start_component` restart one of them on the same port with the same configuration (the
fail-closed tests).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stack import render
from stack.jaeger import Jaeger
from stack.pki import TlsFiles, make_dev_pki
from stack.postgres import PostgresCluster
from stack.processes import (
    ManagedProcess,
    Running,
    StackError,
    find_program,
    http_probe,
    labelled,
    redis_probe,
    redis_url_probe,
)
from stack.topology import BFF_CLIENT_SECRET, Topology

#: Start order. Stop order is the reverse. "postgres" is part of a stack whose topology asks for it,
#: "jaeger" of one given a Jaeger.
COMPONENTS: tuple[str, ...] = (
    "jaeger", "redis", "postgres", "devidp", "oauth2-proxy", "verifier", "api", "nginx"
)  # fmt: skip
#: How long the migration step before the API may take (it waits for another migrator's lock).
MIGRATE_TIMEOUT_SECONDS = 120

SETUP_HINT = "Run `make setup` (scripts/setup.sh) to install it."


@dataclass(frozen=True, slots=True)
class DevUser:
    upn: str
    password: str
    display_name: str
    roles: tuple[str, ...]
    enabled: bool
    tenant: str


def read_dev_users(config_path: Path) -> list[DevUser]:
    """The users devidp's configuration defines, for the start-up banner.

    Read straight from the TOML so the launcher never keeps a second copy of who exists; unknown or
    missing keys are tolerated because devidp, not the banner, validates that file.
    """
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    users: list[DevUser] = []
    for tenant in data.get("tenants", []):
        for u in tenant.get("users", []):
            roles = tuple(str(a.get("appRole", "")) for a in u.get("appRoleAssignments", []))
            users.append(
                DevUser(
                    upn=str(u.get("userPrincipalName", "")),
                    password=str(u.get("password", "")),
                    display_name=str(u.get("displayName", "")),
                    roles=roles,
                    enabled=bool(u.get("accountEnabled", True)),
                    tenant=str(tenant.get("displayName") or tenant.get("id", "")),
                )
            )
    return users


def nginx_templates(repo_root: Path) -> dict[str, str]:
    """The edge's templates (``nginx/*.template``), by the name of the file each renders into."""
    folder = repo_root / render.NGINX_DIR
    return {
        path.name.removesuffix(".template"): path.read_text(encoding="utf-8")
        for path in sorted(folder.glob("*.template"))
    }


def write_edge_conf(folder: Path, templates: dict[str, str], values: dict[str, str]) -> Path:
    """Render the edge's files into ``folder/conf.d/`` and return ``edge.conf``'s path.

    Its includes are relative (``include conf.d/x.inc;``), as in the image: nginx's main
    configuration must be written into ``folder`` itself.
    """
    parts = folder / render.NGINX_PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    for name, text in render.nginx_files(templates, values).items():
        (parts / name).write_text(text, encoding="utf-8")
    return parts / "edge.conf"


def _random_secret() -> str:
    # 32 random bytes as unpadded base64url: what oauth2-proxy's cookie secret and the identity
    # signing key both decode to 32 bytes.
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def load_or_make_secrets(path: Path) -> render.Secrets:
    """Per-run-folder secrets, kept across restarts so sessions survive a relaunch."""
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return render.Secrets(data["identity_signing_key"], data["cookie_secret"])
    made = render.Secrets(identity_signing_key=_random_secret(), cookie_secret=_random_secret())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"identity_signing_key": made.identity_signing_key, "cookie_secret": made.cookie_secret}, f)
    return made


class Stack(Running):
    """Every component of one local stack, configured from one :class:`Topology`."""

    def __init__(
        self,
        topology: Topology,
        *,
        python: str = sys.executable,
        oauth2_proxy_binary: Path | None = None,
        database_url: str | None = None,
        jaeger: Jaeger | None = None,
    ) -> None:
        """``database_url``: a PostgreSQL database another stack runs (the multi-task stack's tasks
        share one); None starts this stack's own cluster when the topology asks for PostgreSQL.
        ``jaeger``: a tracing backend (not started yet) the stack starts first and stops last; the
        topology's ``otlp_endpoint`` must be its endpoint."""
        self.topology = topology
        self.python = python
        default_binary = topology.repo_root / ".cache" / "bin" / "oauth2-proxy"
        self.oauth2_proxy_binary = oauth2_proxy_binary or default_binary
        self.processes: dict[str, ManagedProcess] = {}
        self.tls: TlsFiles | None = None
        self.secrets: render.Secrets | None = None
        self.postgres: PostgresCluster | None = None
        self.database_url = database_url
        self.jaeger = jaeger

    # --- preparation (files only) --------------------------------------------------------------
    @property
    def ca_file(self) -> Path:
        if self.tls is None:
            raise StackError("the stack has not been prepared yet: call prepare() or start()")
        return self.tls.ca_cert

    def prepare(self) -> None:
        """Check programs, make the CA and certificate, render every config. Starts nothing."""
        t = self.topology
        if t.database not in ("sqlite", "postgres"):
            raise StackError(f"the API's database must be sqlite or postgres, not {t.database!r}")
        if self.jaeger is not None and t.otlp_endpoint != self.jaeger.otlp_endpoint:
            raise StackError(
                f"the stack was given a Jaeger at {self.jaeger.otlp_endpoint} but its topology sends "
                f"traces to {t.otlp_endpoint}: set the topology's otlp_endpoint to the Jaeger's"
            )
        programs = self._programs()
        if not t.devidp_config.is_file():
            raise StackError(f"devidp's configuration {t.devidp_config} is missing")
        for folder in (t.run_dir, t.conf_dir, t.logs_dir, t.run_dir / "nginx", t.run_dir / "redis"):
            folder.mkdir(parents=True, exist_ok=True)
        self.tls = tls = make_dev_pki(t.tls_dir)
        self.secrets = secrets = load_or_make_secrets(t.secrets_path)
        configs = self._write_configs(tls)
        self.processes = self._processes(programs, configs, tls, secrets, self._database_url())
        if self.postgres is not None:
            assert self.postgres.process is not None
            self.processes["postgres"] = self.postgres.process
        if self.jaeger is not None:
            self.jaeger.prepare()
            assert self.jaeger.process is not None
            self.processes["jaeger"] = self.jaeger.process

    def _programs(self) -> dict[str, Path]:
        """The three programs that are not Python modules of this repository, or a StackError."""
        return {
            "nginx": find_program("nginx", "Install it (`apt-get install nginx`) or run `make setup`."),
            "redis": find_program(
                "redis-server", "Install it (`apt-get install redis-server`) or `make setup`."
            ),
            "oauth2-proxy": find_program("oauth2-proxy", SETUP_HINT, explicit=self.oauth2_proxy_binary),
        }

    def _write_configs(self, tls: TlsFiles) -> dict[str, Path]:
        """nginx's, oauth2-proxy's and devidp's configuration files, rendered into the run folder."""
        t = self.topology
        (t.conf_dir / "nginx-tls.conf").write_text(render.nginx_tls_conf(tls.cert, tls.key))
        edge_conf = write_edge_conf(t.conf_dir, nginx_templates(t.repo_root), render.edge_values(t))
        nginx_conf = t.conf_dir / "nginx.conf"
        nginx_conf.write_text(render.nginx_main_conf(t, edge_conf, running_as_root=os.geteuid() == 0))
        o2p_values = render.oauth2_proxy_values(t, tls.ca_cert)
        o2p_conf = t.conf_dir / "oauth2-proxy.cfg"
        o2p_alpha = t.conf_dir / "oauth2-proxy.alpha.yaml"
        for template, rendered in (
            (render.OAUTH2_PROXY_TEMPLATE, o2p_conf),
            (render.OAUTH2_PROXY_ALPHA_TEMPLATE, o2p_alpha),
        ):
            text = (t.repo_root / template).read_text(encoding="utf-8")
            rendered.write_text(render.render_template(text, o2p_values, "O2P_"))
        devidp_conf = t.conf_dir / "devidp.toml"
        devidp_conf.write_text(render.devidp_config_text(t.devidp_config.read_text(encoding="utf-8"), t))
        return {
            "nginx": nginx_conf,
            "oauth2-proxy": o2p_conf,
            "oauth2-proxy alpha": o2p_alpha,
            "devidp": devidp_conf,
        }

    def _database_url(self) -> str | None:
        """The API's PostgreSQL: a throw-away cluster, initialised now and started like the others,
        when the topology asks for one and none was given; None for SQLite."""
        t = self.topology
        if t.database == "postgres" and self.postgres is None and self.database_url is None:
            log_path = t.logs_dir / "postgres.log"
            self.postgres = PostgresCluster(t.postgres_port, host=t.bind_host, log_path=log_path)
            self.postgres.init()
        return self.postgres.url() if self.postgres is not None else self.database_url

    def _processes(
        self,
        programs: dict[str, Path],
        configs: dict[str, Path],
        tls: TlsFiles,
        secrets: render.Secrets,
        postgres_url: str | None,
    ) -> dict[str, ManagedProcess]:
        """Every component as a process to start, with the probe that says it is ready."""
        t = self.topology
        api_env = render.api_env(t, tls.ca_cert, secrets, postgres_url=postgres_url)
        py_env = {"PYTHONUNBUFFERED": "1", **dict(t.extra_env)}
        o2p_args = [
            "--config", str(configs["oauth2-proxy"]),
            "--alpha-config", str(configs["oauth2-proxy alpha"]),
            *render.oauth2_proxy_redis_args(t, tls.ca_cert),
        ]  # fmt: skip
        host = t.bind_host
        logs = t.logs_dir
        return {
            "redis": ManagedProcess(
                "Redis",
                [str(programs["redis"]), *render.redis_args(t, t.run_dir / "redis", (tls.cert, tls.key))],
                t.redis_port,
                redis_url_probe(t.redis_client_url) if t.redis_tls else redis_probe(host, t.redis_port),
                logs / "redis.log",
            ),
            "devidp": ManagedProcess(
                "devidp",
                [self.python, *render.devidp_args(t, configs["devidp"], tls.cert, tls.key)],
                t.devidp_port,
                http_probe(f"{t.oidc_issuer}/.well-known/openid-configuration", ca_file=tls.ca_cert),
                logs / "devidp.log", env=py_env, cwd=t.repo_root,
            ),
            "oauth2-proxy": ManagedProcess(
                "oauth2-proxy", [str(programs["oauth2-proxy"]), *o2p_args], t.oauth2_proxy_port,
                http_probe(f"{t.oauth2_proxy_url}/ready"), logs / "oauth2-proxy.log",
                env={
                    **render.oauth2_proxy_env(BFF_CLIENT_SECRET, secrets.cookie_secret),
                    **render.oauth2_proxy_metrics_env(t),
                    **render.oauth2_proxy_redis_env(t),
                },
            ),
            "verifier": ManagedProcess(
                "verifier", [self.python, "-m", "verifier"], t.verifier_port,
                http_probe(f"{t.verifier_url}/readyz"), logs / "verifier.log",
                extra_ports={"verifier metrics": t.verifier_metrics_port},
                env={**py_env, **render.verifier_env(t, tls.ca_cert, secrets)}, cwd=t.repo_root,
            ),
            "api": ManagedProcess(
                "FastAPI", [self.python, "-m", "fastapi_app"], t.api_port,
                http_probe(f"{t.api_url}/api/healthz"), logs / "api.log",
                env={**py_env, **api_env}, cwd=t.repo_root,
            ),
            "nginx": ManagedProcess(
                "nginx",
                [str(programs["nginx"]), "-e", "stderr", "-p", str(t.run_dir / "nginx"),
                 "-c", str(configs["nginx"]), "-g", "daemon off; error_log stderr notice;"],
                t.nginx_port,
                http_probe(f"https://{t.bind_host}:{t.nginx_port}/readyz", ca_file=tls.ca_cert),
                logs / "nginx.log",
                # SIGQUIT is nginx's graceful shutdown (the official image's STOPSIGNAL): it stops
                # accepting, lets in-flight requests finish, then exits. SIGTERM would cut them off.
                stop_signal=signal.SIGQUIT,
            ),
        }  # fmt: skip

    # --- running ---------------------------------------------------------------------------------
    def start(self, components: Iterable[str] = COMPONENTS) -> Stack:
        """Start ``components`` (all by default) in dependency order; on any failure stop them all."""
        wanted = set(components)
        unknown = wanted - set(COMPONENTS)
        if unknown:
            raise StackError(f"unknown component(s) {sorted(unknown)}; expected some of {list(COMPONENTS)}")
        if not self.processes:
            self.prepare()
        wanted &= set(self.processes)
        # Every port is checked before anything starts, so a taken port fails fast and names itself.
        for name in COMPONENTS:
            if name in wanted and not self.processes[name].running:
                self.processes[name].check_ports(self.topology.bind_host)
        try:
            for name in COMPONENTS:
                if name in wanted:
                    self.start_component(name)
        except BaseException:
            self.stop()
            raise
        return self

    def start_component(self, name: str) -> None:
        if name == "postgres" and self.postgres is not None:
            self.postgres.start()  # also creates the API's database the first time
            return
        proc = self.processes[name]
        if name == "api" and not proc.running:
            self.migrate()
        proc.start(self.topology.bind_host)
        proc.wait_ready()

    def migrate(self) -> None:
        """The step before the API starts, as on ECS: ``python -m fastapi_app.migrate`` with the API's env."""
        api = self.processes["api"]
        result = subprocess.run(
            [self.python, "-m", "fastapi_app.migrate"],
            env={**os.environ, **api.env},
            cwd=api.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT_SECONDS,
            check=False,
        )
        with api.log_path.open("a", encoding="utf-8") as log:
            log.write(result.stderr)
        if result.returncode != 0:
            raise StackError(
                f"the API's database migration failed (status {result.returncode}):\n{result.stderr}"
            )

    def stop_component(self, name: str) -> None:
        proc = self.processes[name]
        proc.stop()
        proc.wait_port_released(self.topology.bind_host)

    def stop(self) -> None:
        for name in reversed(COMPONENTS):
            if name in self.processes:
                self.processes[name].stop()
        if self.postgres is not None:
            self.postgres.cleanup()  # throw-away: its data goes with it
            self.postgres = None
            self.processes.pop("postgres", None)

    def _database_description(self) -> str:
        if self.postgres is not None:
            t = self.topology
            return f"PostgreSQL {t.bind_host}:{t.postgres_port} (throw-away, user edge)"
        return f"SQLite {self.topology.run_dir / 'api.sqlite3'}"

    def _tracing_lines(self) -> list[str]:
        t = self.topology
        if self.jaeger is not None:
            lines = [
                f"    traces: Jaeger, {self.jaeger.query_url}/api/traces/<trace id>  (JSON; the trace id is",
                "      `trace_id` in nginx's access log and in the verifier's and FastAPI's log lines)",
            ]
            if self.jaeger.ui_assets is not None:
                ui = self.jaeger.query_url
                lines.append(f"      Jaeger's UI: {ui}/search, {ui}/trace/<trace id>")
            return lines
        if t.otlp_endpoint is not None:
            return [f"    traces: sent to {t.otlp_endpoint}"]
        return []

    def users(self) -> list[DevUser]:
        return read_dev_users(self.topology.devidp_config)

    def banner(self) -> str:
        t = self.topology
        lines = [
            "",
            *labelled(
                [
                    ("The app", f"{t.public_origin}/"),
                    ("API docs", f"{t.public_origin}/api/docs"),
                    ("devidp", f"{t.devidp_origin}/  (tenant {t.tenant_id})"),
                    ("Trust this CA", self.ca_file),
                    ("Logs", f"{t.logs_dir}/"),
                ]
            ),
            "",
            "  Internal (127.0.0.1 only, never through nginx):",
            f"    oauth2-proxy {t.oauth2_proxy_url}   verifier {t.verifier_url}   metrics {t.metrics_url}",
            f"    FastAPI {t.api_url}   Redis {t.redis_url}",
            f"    database: {self._database_description()}",
            *self._tracing_lines(),
            "",
            "  Sign in as (devidp users, development passwords):",
        ]
        for u in self.users():
            roles = ", ".join(r for r in u.roles if r) or "no role"
            state = "" if u.enabled else "  [disabled]"
            lines.append(f"    {u.upn:<36} {u.password:<20} {roles}{state}")
        lines.append("")
        return "\n".join(lines)
