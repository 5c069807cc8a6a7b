"""The in-VPC TLS option beside the plain one: nginx reaching the verifier and the API over mutual TLS.

Production ends TLS at the ALB for every design; inside the task nginx, the verifier and the API
share the loopback, so the shipped templates speak plain HTTP there. This measures what the other
choice costs: a second verifier and a second API of the stack's own code and configuration, each
serving TLS 1.3 and requiring a client certificate (``VERIFIER_TLS_*`` and ``API_TLS_*``,
:mod:`service_runtime.tls`), and an edge nginx from the real template whose two upstreams are
reached with ``https://`` and the stack's development certificate as nginx's client certificate
(``proxy_ssl_*``; keep-alive connections and TLS session reuse as nginx does them by default).

The template has no switch for it, so the rendered configuration is rewritten here, and the rewrite
fails loudly if the template stops matching (:func:`tls_upstreams`).
"""

from __future__ import annotations

from pathlib import Path

from bench.edge.peers import edge_nginx, extra_api, extra_verifier
from stack.launcher import Stack
from stack.processes import ManagedProcess, Probe, http_probe

#: What the edge's two per-request upstreams become, and the settings of the TLS hop.
_UPSTREAMS = ("edge_verifier", "edge_api")


def _probe(url: str, stack: Stack) -> Probe:
    """Ready when ``url`` answers 200 to a client holding the stack's certificate."""
    assert stack.tls is not None
    return http_probe(url, ca_file=stack.tls.ca_cert, client_cert=(stack.tls.cert, stack.tls.key))


def _tls_env(prefix: str, stack: Stack) -> dict[str, str]:
    assert stack.tls is not None
    return {
        f"{prefix}_TLS_CERT_FILE": str(stack.tls.cert),
        f"{prefix}_TLS_KEY_FILE": str(stack.tls.key),
        f"{prefix}_TLS_CLIENT_CA_FILE": str(stack.tls.ca_cert),
    }


def tls_verifier(stack: Stack, folder: Path) -> ManagedProcess:
    """The stack's verifier, configured alike, serving /verify over mutual TLS."""
    return extra_verifier(
        stack,
        folder,
        "verifier (TLS)",
        _tls_env("VERIFIER", stack),
        # The development certificate names 127.0.0.1 too.
        probe=lambda address: _probe(f"https://{address}/readyz", stack),
    )


def tls_api(stack: Stack, folder: Path) -> ManagedProcess:
    """The stack's API, configured alike (its own SQLite file), serving over mutual TLS."""
    return extra_api(
        stack,
        folder,
        "our API (TLS)",
        _tls_env("API", stack),
        probe=lambda port: _probe(f"https://localhost:{port}/api/healthz", stack),
    )


def tls_upstreams(conf: str, stack: Stack) -> str:
    """The rendered edge configuration with the verifier and the API reached over mutual TLS."""
    assert stack.tls is not None
    changed = conf
    for upstream in _UPSTREAMS:
        plain = f"proxy_pass http://{upstream}"
        if plain not in changed:
            raise SystemExit(f"the edge template no longer has {plain!r}: update bench/edge/tls.py")
        changed = changed.replace(plain, f"proxy_pass https://{upstream}")
    settings = (
        "    # bench/edge/tls.py: the verifier and the API over mutual TLS.\n"
        f"    proxy_ssl_trusted_certificate {stack.tls.ca_cert};\n"
        "    proxy_ssl_verify on;\n"
        "    proxy_ssl_name localhost;\n"
        "    proxy_ssl_server_name on;\n"
        "    proxy_ssl_protocols TLSv1.3;\n"
        f"    proxy_ssl_certificate {stack.tls.cert};\n"
        f"    proxy_ssl_certificate_key {stack.tls.key};\n"
        "    proxy_ssl_session_reuse on;\n"
    )
    marker = "    server_tokens off;\n"
    if changed.count(marker) != 1:
        raise SystemExit("the edge template's server block changed: update bench/edge/tls.py")
    return changed.replace(marker, marker + settings)


def tls_edge_nginx(
    stack: Stack, folder: Path, verifier: ManagedProcess, api: ManagedProcess
) -> ManagedProcess:
    """The edge nginx in front of ``verifier`` and ``api``, both reached over mutual TLS."""
    return edge_nginx(
        stack,
        folder,
        verifier_addr=f"127.0.0.1:{verifier.port}",
        api_addr=f"127.0.0.1:{api.port}",
        rewrite=lambda conf: tls_upstreams(conf, stack),
        name="edge nginx (TLS to the verifier and the API)",
    )
