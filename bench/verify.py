"""Benchmark /verify over HTTP: ``python -m bench.verify`` (from the project root; about a minute).

The server under test runs in its own process; ``wrk`` drives it on loopback. Scenarios, each
beside a baseline measured in the same run (an aiohttp handler that answers 200 doing nothing):

* cache hit: one token repeated;
* cache miss: 10,000 distinct tokens against a verifier started with the token cache disabled, so
  every request is a full validation (with the cache on, the second pass over the tokens would hit);
* invalid: a token whose signature does not verify (parse plus RSA, then a refusal).

Each runs with 32 connections (throughput) and with 1 connection (latency without queueing).
Afterwards the same work is timed in-process per call, beside ``jwt.decode``, to show where a miss
spends its time. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import run_wrk

HERE = Path(__file__).resolve().parent
DURATION_SECONDS = 4
#: The request every /verify in the benchmark judges (what nginx names in X-Original-URI).
ORIGINAL_URI = "/api/projects?page=1"
DISTINCT_TOKENS = 10_000
KID = "bench-key"


# --- server side (a child process) ----------------------------------------------------------------


async def _serve(role: str, key_pem: bytes, cache_size: int) -> None:
    from aiohttp import web
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from service_runtime.logs import configure_logging
    from tests.support.token_forge import TENANT_A, JwksServer, SigningKey, verifier_settings
    from verifier.service.app import SERVER_LIMITS, STATE, create_app

    if role == "baseline":

        async def nothing(_request: web.Request) -> web.Response:
            return web.Response(status=200)

        app = web.Application()
        app.router.add_get("/verify", nothing)
        jwks = None
    else:
        key = SigningKey(KID, load_pem_private_key(key_pem, password=None))  # type: ignore[arg-type]
        jwks = JwksServer({TENANT_A: [key]})
        await jwks.start()
        # Production logging (refusals at info, as JSON lines) so the invalid scenario pays for it.
        configure_logging("info")
        app = create_app(verifier_settings(jwks.base_url, token_cache_size=cache_size))
    runner = web.AppRunner(app, access_log=None, **SERVER_LIMITS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    if role != "baseline":
        for _ in range(1500):
            if app[STATE].ready:
                break
            await asyncio.sleep(0.02)
    authority = jwks.base_url if jwks is not None else "-"
    print(f"READY {port} {authority}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    if jwks is not None:
        await jwks.stop()


# --- driver ---------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    #: The JWKS server (token issuer authority) a verifier child trusts.
    authority: str

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(role: str, key_file: Path, cache_size: int = 100_000) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.verify", "serve", role, str(key_file), str(cache_size)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=HERE.parent,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline().decode()
        match = re.match(r"READY (\d+) (\S+)", line)
        if match:
            return Server(process, int(match.group(1)), match.group(2))
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"the {role} server did not start")


@dataclass
class Result:
    name: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    requests: int


def run_load(name: str, port: int, tokens_file: Path, connections: int) -> Result:
    load = run_wrk(
        f"http://127.0.0.1:{port}",
        connections=connections,
        duration=DURATION_SECONDS,
        env={"BENCH_PATH": "/verify", "BENCH_ORIGINAL_URI": ORIGINAL_URI, "BENCH_TOKENS": str(tokens_file)},
    )
    if load.socket_errors:
        raise SystemExit(f"{name}: {load.socket_errors} socket errors")
    rps = load.requests / load.seconds
    return Result(name, connections, rps, load.p50_ms, load.p99_ms, load.non2xx, load.requests)


def micro_benchmarks(key_pem: bytes, tokens: list[str], authority: str) -> dict[str, float]:
    """Per-call microseconds of the validation pieces, in this process."""
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tests.support.token_forge import (
        API_APP_ID_URI,
        TENANT_A,
        SigningKey,
        key_set_for,
        validation_settings,
    )
    from verifier.core.access_tokens import _RS256, verify_access_token
    from verifier.core.jose import parse_compact_jws
    from verifier.sources.access_token import VerifiedIdentity, VerifiedTokenCache, token_digest

    key = SigningKey(KID, load_pem_private_key(key_pem, password=None))  # type: ignore[arg-type]
    settings = validation_settings(authority)
    keys = key_set_for({TENANT_A: [key]})
    public = key.private_key.public_key()
    now = time.time()
    sample = tokens[:2000]
    parsed = [parse_compact_jws(t, max_bytes=16384) for t in sample]
    cache = VerifiedTokenCache()
    principal = VerifiedIdentity(verify_access_token(sample[0], keys, settings, now))
    cache.put(token_digest(sample[0]), principal)

    def per_call(fn, n: int) -> float:
        return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6

    it = iter(range(10**9))

    def pyjwt_decode() -> None:
        jwt.decode(
            sample[next(it) % len(sample)],
            public,
            algorithms=["RS256"],
            audience=API_APP_ID_URI,
            issuer=f"{authority}/{TENANT_A}/v2.0",
            options={"require": ["exp", "nbf", "iat", "iss", "aud"]},
        )

    return {
        "jwt.decode (RS256, aud, iss, required claims)": per_call(pyjwt_decode, 2000),
        "jwt.get_unverified_header": per_call(
            lambda: jwt.get_unverified_header(sample[next(it) % 2000]), 2000
        ),
        "verify_access_token (full miss path)": per_call(
            lambda: verify_access_token(sample[next(it) % 2000], keys, settings, now), 2000
        ),
        "  of which parse_compact_jws": per_call(
            lambda: parse_compact_jws(sample[next(it) % 2000], max_bytes=16384), 2000
        ),
        "  of which RSA-2048 verify": per_call(
            lambda: _RS256.verify(parsed[0].signing_input, public, parsed[0].signature), 2000
        ),
        "cache hit (sha256 + lookup)": per_call(lambda: cache.get(token_digest(sample[0])), 20000),
    }


def main(*, write_readme: bool = True) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package 'wrk')")
    from cryptography.hazmat.primitives import serialization

    from tests.support.token_forge import SigningKey, TokenForge

    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as folder:
        work = Path(folder)
        key = SigningKey.generate(KID)
        key_pem = key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_file = work / "key.pem"
        key_file.write_bytes(key_pem)
        forge = TokenForge(key)

        print(f"minting {DISTINCT_TOKENS} tokens ...", flush=True)
        baseline = start_server("baseline", key_file)
        cached = start_server("verifier", key_file)
        uncached = start_server("verifier", key_file, cache_size=0)
        try:
            # Every verifier child starts its own JWKS server; the issuer is read back from it.
            results: list[Result] = []
            tokens: dict[int, dict[str, Path]] = {}
            for server in (cached, uncached):
                forge.authority = server.authority
                files: dict[str, Path] = {}
                one = forge.mint()
                files["hit"] = _write(work / f"hit-{server.port}.txt", [one])
                head, payload, signature = one.split(".")
                bad = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
                files["invalid"] = _write(work / f"invalid-{server.port}.txt", [f"{head}.{payload}.{bad}"])
                if server is uncached:
                    distinct = [
                        forge.mint(forge.user_claims(uti=uuid.uuid4().hex)) for _ in range(DISTINCT_TOKENS)
                    ]
                    files["miss"] = _write(work / "miss.txt", distinct)
                tokens[server.port] = files
            print(
                f"tokens ready after {time.monotonic() - started:.0f}s; measuring ({DURATION_SECONDS}s each)"
            )
            for connections in (32, 1):
                results.append(
                    run_load(
                        "baseline (no-op handler)", baseline.port, tokens[cached.port]["hit"], connections
                    )
                )
                results.append(
                    run_load("cache hit (1 token)", cached.port, tokens[cached.port]["hit"], connections)
                )
                results.append(
                    run_load(
                        "cache miss (10,000 tokens)",
                        uncached.port,
                        tokens[uncached.port]["miss"],
                        connections,
                    )
                )
                results.append(
                    run_load(
                        "invalid (bad signature)", cached.port, tokens[cached.port]["invalid"], connections
                    )
                )
        finally:
            for server in (baseline, cached, uncached):
                server.stop()
        micro = micro_benchmarks(key_pem, (work / "miss.txt").read_text().split(), uncached.authority)

    section = measured_section(results, micro, machine_description(load_at_start))
    print()
    print(section)
    if write_readme:
        rewrite_measured_section(README, section)
        print(f"\n{README.relative_to(HERE.parent)}: measured section rewritten")
    print(f"\n(total {time.monotonic() - started:.0f}s)")
    return 0


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


#: bench/README.md's section between these markers is written by this benchmark, never by hand.
README = HERE / "README.md"
BEGIN_MARKER = "<!-- measured by `python -m bench.verify`: begin (rewritten on every run) -->"
END_MARKER = "<!-- measured by `python -m bench.verify`: end -->"
JWT_DECODE = "jwt.decode (RS256, aud, iss, required claims)"
FULL_MISS = "verify_access_token (full miss path)"


def machine_description(load_average: float) -> str:
    from importlib.metadata import version

    python = ".".join(map(str, sys.version_info[:3]))
    packages = ", ".join(f"{name} {version(name)}" for name in ("aiohttp", "PyJWT", "cryptography"))
    return f"{os.cpu_count()} CPUs, Python {python}, {packages}; load average {load_average:.1f} at the start"


def measured_section(results: list[Result], micro: dict[str, float], machine: str) -> str:
    """The README's measured section: both tables and what follows from them, from this run only."""
    by = {(r.name, r.connections): r for r in results}
    lines = [f"### Measured ({machine})", ""]
    lines += [
        "| scenario | conns | req/s | p50 ms | p99 ms | CPU µs/req over baseline | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        base = by[("baseline (no-op handler)", r.connections)]
        added_text = "—" if r is base or r.connections != 32 else f"{(1 / r.rps - 1 / base.rps) * 1e6:.0f}"
        lines.append(
            f"| {r.name} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {added_text} | "
            f"{r.non2xx} |"
        )
    lines += ["", "| in-process, per call | µs |", "|---|---:|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in micro.items()]
    base1 = by[("baseline (no-op handler)", 1)]
    hit1 = by[("cache hit (1 token)", 1)]
    hit32, miss32 = by[("cache hit (1 token)", 32)], by[("cache miss (10,000 tokens)", 32)]
    added_hit = hit1.p50_ms - base1.p50_ms
    miss_over_hit = (1 / miss32.rps - 1 / hit32.rps) * 1e6
    full, decode = micro[FULL_MISS], micro[JWT_DECODE]
    rsa, parse = micro["  of which RSA-2048 verify"], micro["  of which parse_compact_jws"]
    lines += [
        "",
        f"- Cache hit: adds {added_hit:.3f} ms p50 over the baseline at 1 connection (goal < 0.2 ms): "
        f"**{'met' if added_hit < 0.2 else 'not met'}**.",
        f"- Miss: in-process the whole validation is {full:.1f} µs (RSA-2048 {rsa:.1f} µs + parse "
        f"{parse:.1f} µs + claim checks); `jwt.decode` with the same checks takes {decode:.1f} µs, "
        f"{decode / full:.1f} times as long.",
        f"- Over HTTP a miss costs {miss_over_hit:.0f} µs per request more than a hit (32 connections).",
    ]
    return "\n".join(lines)


def rewrite_measured_section(readme: Path, section: str) -> None:
    """Replace what lies between the markers with ``section``; everything else stays as written."""
    text = readme.read_text(encoding="utf-8")
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin < 0 or end < begin:
        raise SystemExit(
            f"{readme}: the measured-section markers are missing; restore them:\n{BEGIN_MARKER}\n{END_MARKER}"
        )
    head = text[: begin + len(BEGIN_MARKER)]
    readme.write_text(f"{head}\n{section}\n{text[end:]}", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="internal: run one server under test")
    serve.add_argument("role", choices=["baseline", "verifier"])
    serve.add_argument("key_file", type=Path)
    serve.add_argument("cache_size", type=int)
    parser.add_argument(
        "--no-write", action="store_true", help="print the figures without rewriting bench/README.md"
    )
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(_serve(args.role, args.key_file.read_bytes(), args.cache_size))
    else:
        sys.exit(main(write_readme=not args.no_write))
