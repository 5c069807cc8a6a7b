"""The credentials the load carries: a session cookie, a bearer token, many distinct tokens, a refused one.

* The session cookie comes from a real sign-in (nginx -> oauth2-proxy -> devidp's form), the same
  walk the end-to-end tests make.
* The bearer token comes from devidp's token endpoint (the password grant, as Postman would).
* The 10,000 distinct tokens: devidp has no endpoint that mints tokens in bulk, and 10,000 token
  requests would make the benchmark's set-up slower than its measurements. So the benchmark starts
  devidp with ``[signing] key_file`` in the run folder (a devidp setting: the key survives restarts)
  and re-signs the claims of a real devidp token with that key, varying only ``uti`` (Entra's unique
  token id): same header, same claims, same key, valid for the verifier and for PyJWT alike.
* The refused token is the real bearer token with its signature changed.
"""

from __future__ import annotations

import multiprocessing
import re
import secrets
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from stack.launcher import Stack
from tests.e2e import edge_client

BENCH_USER = ("alice@contoso-dev.example", "alice-password")


def devidp_config_with_key_file(example: Path, key_file: Path, into: Path) -> Path:
    """A copy of devidp's example configuration that keeps its signing key in ``key_file``."""
    text, count = re.subn(r'(?m)^key_file = ""', f'key_file = "{key_file}"', example.read_text())
    if count != 1:
        raise RuntimeError(f"{example}: expected one empty `key_file` under [signing] to set")
    into.write_text(text)
    return into


def session_cookie(stack: Stack) -> str:
    """``name=value`` of a signed-in session's cookie."""
    signed_in = edge_client.sign_in(stack, *BENCH_USER)
    try:
        name = stack.topology.session_cookie_name
        value = signed_in.client.cookies.get(name)
        if not value:
            raise RuntimeError("signing in gave no session cookie")
        return f"{name}={value}"
    finally:
        signed_in.client.close()


def bearer_token(stack: Stack) -> str:
    return edge_client.password_token(stack, *BENCH_USER)


def refused_token(token: str) -> str:
    """``token`` with a signature that no longer verifies (same length, same alphabet)."""
    head, payload, signature = token.split(".")
    changed = signature[:-8] + ("AAAAAAAA" if signature[-8:] != "AAAAAAAA" else "BBBBBBBB")
    return f"{head}.{payload}.{changed}"


_worker_key: Any = None


def _load_key(pem: bytes) -> None:
    global _worker_key  # one key per pool worker, loaded once
    _worker_key = load_pem_private_key(pem, password=None)


def _sign(job: tuple[dict[str, Any], dict[str, Any], int]) -> list[str]:
    header, claims, count = job
    return [
        jwt.encode(
            {**claims, "uti": secrets.token_urlsafe(16)}, _worker_key, algorithm="RS256", headers=header
        )
        for _ in range(count)
    ]


def distinct_tokens(template: str, key_file: Path, count: int) -> list[str]:
    """``count`` copies of ``template``, each with a fresh ``uti``, signed with devidp's key."""
    header = jwt.get_unverified_header(template)
    header.pop("alg", None)
    claims = jwt.decode(template, options={"verify_signature": False})
    pem = key_file.read_bytes()
    workers = max(1, min(4, multiprocessing.cpu_count()))
    chunk = -(-count // workers)
    jobs = [(header, claims, min(chunk, count - i * chunk)) for i in range(workers) if count - i * chunk > 0]
    with multiprocessing.get_context("spawn").Pool(len(jobs), initializer=_load_key, initargs=(pem,)) as pool:
        return [token for batch in pool.map(_sign, jobs) for token in batch]
