"""``python -m devidp --config devidp/example.toml [--host H] [--port P] [--tls-cert F --tls-key F]
[--public-url URL] [--access-token-lifetime S] [--enable-admin]``

Flags override the file's ``[server]``/``[lifetimes]``/``[admin]`` values. A configuration that
does not validate stops the start with every problem listed and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import ssl
import sys
from collections.abc import Sequence

from aiohttp import web

from devidp.app import PathOnlyAccessLogger, create_app
from devidp.config import load_config
from devidp.model import DevIdpConfig
from service_runtime.config_error import ConfigError
from service_runtime.logs import configure_logging


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m devidp", description="A local stand-in for Microsoft Entra ID (development only)."
    )
    p.add_argument("--config", required=True, help="TOML configuration (see devidp/example.toml)")
    p.add_argument("--host", help="listen address (default: [server].host, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: [server].port, else 8900)")
    p.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument(
        "--public-url",
        "--issuer-base",
        dest="public_url",
        help="base URL used in issuers and documents, e.g. https://localhost:8900",
    )
    p.add_argument(
        "--app-origin",
        metavar="ORIGIN",
        help="the edge's public origin, where the apps' redirect URIs point (default: as in the file, "
        "https://localhost:8443 in example.toml), e.g. https://localhost:18443",
    )
    p.add_argument(
        "--access-token-lifetime",
        type=int,
        metavar="SECONDS",
        help="override [lifetimes].access_token_seconds",
    )
    p.add_argument("--enable-admin", action="store_true", help="turn on the /_devidp/admin/ endpoints")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def apply_overrides(config: DevIdpConfig, args: argparse.Namespace) -> DevIdpConfig:
    server = config.server
    changes = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
            "public_url": args.public_url.rstrip("/") if args.public_url else None,
        }.items()
        if v is not None
    }
    server = dataclasses.replace(server, **changes)
    problems = []
    if bool(server.tls_cert) != bool(server.tls_key):
        problems.append("--tls-cert and --tls-key must be given together")
    if server.port is not None and not 0 <= server.port <= 65535:
        problems.append(f"--port: {server.port} is not a port number")
    lifetimes = config.lifetimes
    if args.access_token_lifetime is not None:
        if args.access_token_lifetime < 1:
            problems.append("--access-token-lifetime must be at least 1 second")
        else:
            lifetimes = dataclasses.replace(lifetimes, access_token_seconds=args.access_token_lifetime)
    if problems:
        raise ConfigError("command line", problems)
    admin = dataclasses.replace(config.admin, enabled=config.admin.enabled or args.enable_admin)
    return dataclasses.replace(config, server=server, lifetimes=lifetimes, admin=admin)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, stream=sys.stderr)
    try:
        config = apply_overrides(load_config(args.config, app_origin=args.app_origin), args)
    except ConfigError as exc:
        print(f"devidp: {exc}", file=sys.stderr)
        return 2
    ssl_context = None
    if config.server.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"devidp: cannot load the TLS certificate or key: {exc}", file=sys.stderr)
            return 2
    try:
        app = create_app(config)
    except (OSError, ValueError) as exc:
        print(f"devidp: cannot load the signing key: {exc}", file=sys.stderr)
        return 2
    tenants = ", ".join(t.id for t in config.tenants)
    logging.getLogger("devidp").info(
        "devidp serving %s for tenants %s%s",
        config.base_url(),
        tenants,
        " (admin endpoints ON)" if config.admin.enabled else "",
    )
    web.run_app(
        app,
        host=config.server.host,
        port=config.server.port,
        ssl_context=ssl_context,
        access_log_class=PathOnlyAccessLogger,
        print=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
