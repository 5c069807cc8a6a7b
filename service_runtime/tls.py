"""TLS on a service's own listener: the in-VPC option, where nginx reaches the verifier and the API
over TLS (with client certificates: mutual TLS) instead of plain HTTP on the task's loopback.

Off unless configured. ``<PREFIX>_TLS_CERT_FILE`` and ``<PREFIX>_TLS_KEY_FILE`` (PEM) turn it on;
``<PREFIX>_TLS_CLIENT_CA_FILE`` (PEM) also requires every client to present a certificate that CA
issued. Within one ECS task every container shares the loopback, so plain HTTP there crosses no
network; the option is for deployments that put the sidecars elsewhere, and ``make bench-edge``
measures what it costs (docs/options.md).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from service_runtime.env import EnvReader


@dataclass(frozen=True, slots=True)
class ServerTls:
    cert_file: Path
    key_file: Path
    #: Clients must present a certificate this CA issued (mutual TLS); None: any client.
    client_ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A server context: TLS 1.2 or later, the certificate and key, and client certificates
        required when :attr:`client_ca_file` is set."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=self.client_ca_file)
        return context


def server_tls_from_env(reader: EnvReader, prefix: str) -> ServerTls | None:
    """``<prefix>_TLS_*`` read and checked (problems go to ``reader``); None when TLS is off."""
    cert = reader.existing_file(f"{prefix}_TLS_CERT_FILE", "a PEM certificate chain")
    key = reader.existing_file(f"{prefix}_TLS_KEY_FILE", "a PEM private key")
    client_ca = reader.existing_file(f"{prefix}_TLS_CLIENT_CA_FILE", "a PEM CA bundle")
    if cert is None and key is None:
        if client_ca is not None:
            reader.problem(
                f"{prefix}_TLS_CLIENT_CA_FILE needs {prefix}_TLS_CERT_FILE and {prefix}_TLS_KEY_FILE"
            )
        return None
    if cert is None or key is None:
        reader.problem(f"set both {prefix}_TLS_CERT_FILE and {prefix}_TLS_KEY_FILE, or neither")
        return None
    tls = ServerTls(cert, key, client_ca)
    if not reader.problems:
        try:
            tls.context()
        except (OSError, ssl.SSLError) as exc:
            # The class and the library's reason, never the files' contents.
            reader.problem(
                f"{prefix}_TLS_*: the certificate, key or CA cannot be loaded ({type(exc).__name__})"
            )
    return tls
