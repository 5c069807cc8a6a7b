"""The edge benchmark's output: one Markdown text (table, goals, CPU by process group), kept in the README."""

from __future__ import annotations

import datetime as dt
import importlib.util
import platform
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.edge.measure import LoadResult

BEGIN_MARKER = "<!-- bench-edge:begin (written by `python -m bench.edge`; edits here are overwritten) -->"
END_MARKER = "<!-- bench-edge:end -->"


@dataclass(frozen=True)
class Goal:
    text: str
    target: str
    #: (measured value as text, met)
    judge: Callable[[dict[str, dict[str, float]]], tuple[str, bool]]


def _ratio(numerator: str, denominator: str, limit: float, metric: str = "cpu") -> Callable:
    def judge(m: dict[str, dict[str, float]]) -> tuple[str, bool]:
        value = m[numerator][metric] / m[denominator][metric]
        met = value <= limit if metric == "cpu" else value >= limit
        return f"{value:.2f}x", met

    return judge


def _identity_cost(m: dict[str, dict[str, float]]) -> tuple[str, bool]:
    value = m["edge_bearer"]["cpu"] - m["edge_healthz"]["cpu"]
    return f"{value:,.0f} µs", value <= 80


def _bearer_p99(m: dict[str, dict[str, float]]) -> tuple[str, bool]:
    value = m["edge_bearer"]["p99"]
    return f"{value:.2f} ms", value <= 5.0


GOALS = [
    Goal("edge bearer `/api/me` CPU/req vs the in-app PyJWT design", "<= 1.00x",
         _ratio("edge_bearer", "in_app", 1.0)),
    Goal("edge bearer `/api/me` req/s vs the in-app PyJWT design (equal cores)", ">= 1.00x",
         _ratio("edge_bearer", "in_app", 1.0, metric="rps")),
    Goal("edge `/api/healthz` CPU/req vs the bare FastAPI endpoint", "<= 1.50x",
         _ratio("edge_healthz", "bare", 1.5)),
    Goal("identity cost: edge bearer `/api/me` minus edge `/api/healthz`", "<= 80 µs", _identity_cost),
    Goal("edge cookie `/api/me` CPU/req vs plain oauth2-proxy design", "<= 1.00x",
         _ratio("edge_cookie", "plain_cookie_me", 1.0)),
    Goal("SPA page with a cookie CPU/req vs nginx auth_request -> oauth2-proxy", "<= 1.25x",
         _ratio("edge_page", "plain_page", 1.25)),
    Goal("the same, session cache off (every request asks oauth2-proxy and Redis)", "(<= 1.00x)",
         _ratio("edge_cookie_uncached", "plain_cookie_me", 1.0)),
    Goal("the SPA page, session cache off", "(<= 1.25x)",
         _ratio("edge_page_uncached", "plain_page", 1.25)),
    Goal("token-cache miss path (a fresh token each request) CPU/req vs the in-app PyJWT design", "<= 1.00x",
         _ratio("edge_miss", "in_app", 1.0)),
    Goal("edge bearer `/api/me` p99 at the benchmark's connections", "<= 5 ms", _bearer_p99),
]  # fmt: skip


@dataclass(frozen=True)
class Report:
    rows: list[tuple[str, str]]
    results: dict[str, list[LoadResult]]
    repetitions: int
    duration: float
    connections: int
    cores: int
    load_before: str
    load_after: str
    token_count: int
    #: one-off observations printed under the table (e.g. what a request with many headers gets)
    notes: tuple[str, ...] = ()

    def medians(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for key, _label in self.rows:
            runs = self.results[key]
            out[key] = {
                "rps": statistics.median(r.rps for r in runs),
                "p50": statistics.median(r.p50_ms for r in runs),
                "p99": statistics.median(r.p99_ms for r in runs),
                "cpu": statistics.median(r.cpu_us_per_request for r in runs),
                "cpu_min": min(r.cpu_us_per_request for r in runs),
                "cpu_max": max(r.cpu_us_per_request for r in runs),
                "requests": statistics.median(r.requests for r in runs),
            }
        return out

    def component_medians(self) -> tuple[list[str], dict[str, dict[str, float]]]:
        components: list[str] = []
        for runs in self.results.values():
            for name in runs[0].cpu:
                if name not in components:
                    components.append(name)
        table = {
            key: {
                c: statistics.median(r.component_us_per_request(c) for r in self.results[key])
                for c in components
            }
            for key, _label in self.rows
        }
        shown = [c for c in components if any(table[key][c] >= 1.0 for key in table)]
        return shown, table

    def render(self) -> str:
        m = self.medians()
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            *METHOD,
            "",
            f"Served as ours: uvicorn with the {server_flavour()}.",
            "",
            f"Run {now}: {self.cores} cores shared by wrk and every server, `wrk -t1 -c{self.connections} "
            f"-d{self.duration:g}s`, {self.repetitions} interleaved repetitions, medians; Python "
            f"{platform.python_version()}. Load average (1, 5, 15 min) before {self.load_before}, "
            f"after {self.load_after}: other work on the machine moves absolute figures; compare rows "
            "within the run.",
            "",
            "| path | req/s | p50 ms | p99 ms | CPU µs/req | CPU µs/req min, max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, label in self.rows:
            r = m[key]
            lines.append(
                f"| {label} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu']:,.0f} | "
                f"{r['cpu_min']:,.0f}, {r['cpu_max']:,.0f} |"
            )
        miss = m["edge_miss"]["requests"]
        lines += [f"\n{note}" for note in self.notes]
        lines += [
            "",
            f"The cache-miss row sent a median {miss:,.0f} requests per repetition over {self.token_count:,} "
            "fresh tokens per repetition"
            + (
                " (every request a miss)."
                if miss <= self.token_count
                else ": some requests repeated a token of the same repetition and hit the cache."
            ),
            "",
            "| goal | target | measured | met |",
            "|---|---:|---:|:---:|",
        ]
        for goal in GOALS:
            value, met = goal.judge(m)
            lines.append(f"| {goal.text} | {goal.target} | {value} | {'yes' if met else '**no**'} |")
        shown, table = self.component_medians()
        lines += [
            "",
            "Where each row's CPU went, µs per request by process group (medians; groups under 1 µs/req "
            "everywhere are left out):",
            "",
            "| path | " + " | ".join(shown) + " |",
            "|---|" + "---:|" * len(shown),
        ]
        for key, label in self.rows:
            cells = " | ".join(f"{table[key][c]:,.0f}" if table[key][c] >= 0.5 else "" for c in shown)
            lines.append(f"| {label} | {cells} |")
        return "\n".join(lines) + "\n"


METHOD = [
    "## The edge against validating in the app (`make bench-edge`)",
    "",
    "```",
    "make bench-edge                      # python -m bench.edge; about 6 minutes; needs wrk",
    "make bench-edge BENCH_EDGE_ARGS='--profile 8'   # also py-spy summaries into bench/profiles/",
    "python -m bench.edge.compare OLD_CHECKOUT NEW_CHECKOUT --pairs 3   # old against new, alternating",
    "```",
    "",
    "One run starts the real stack with the launcher on free ports and, beside it, every comparison",
    "design; wrk drives each row with the rows interleaved, and CPU per request is the utime + stime",
    "of every server process (all their workers and threads, from `/proc`; wrk excluded) divided by",
    "the requests the row got. On Fargate CPU per request is the bill and, at saturation, the",
    "throughput; req/s and latency here also depend on wrk and on any other work sharing the same",
    "cores.",
    "",
    "- **TLS**: none between wrk and any design. In production the ALB ends TLS for all of them and",
    "  nginx listens on plain HTTP (`EDGE_LISTEN=8080`), so the edge is `nginx/edge.conf.template`",
    "  rendered as the ECS task renders it (plain HTTP, no TLS include) in front of the stack's own",
    "  verifier, API and oauth2-proxy. The stack's TLS nginx is used only to sign in. TLS from wrk",
    "  would add the same cost to every row and burn the shared cores in wrk too. Behind nginx, the",
    "  `edge_tls_*` rows weigh the in-VPC option: a verifier and an API of their own reached over",
    "  mutual TLS 1.3 (`VERIFIER_TLS_*`, `API_TLS_*`; bench/edge/tls.py), beside the plain rows.",
    "- **Unix sockets**: the `edge_uds_*` rows reach a verifier and an API of their own through socket",
    "  files instead of loopback TCP (nginx's `unix:` upstreams; bench/edge/uds.py): a lever the",
    "  product does not ship yet, measured beside the TCP rows.",
    "- **Traces**: the stack runs with tracing off, so its rows are the \"off\" figures; the",
    "  `edge_traced_*` rows are the same requests through a verifier, an API and an edge nginx of",
    "  their own with tracing on (every request sampled, the SDK's default batching, nginx's span",
    "  records to the verifier's relay), and `edge_traced_sampled_bearer` through a third set keeping",
    "  5 % of the traces by trace id; both export to Jaeger, which stands where the task's ADOT",
    "  collector stands and is one of the measured processes (bench/edge/traced.py).",
    "- **Cores**: the machine's cores are shared by everything, so nothing is pinned with taskset:",
    "  pinning a design to one core would just hand it less than ours gets. The in-app designs run as",
    "  many uvicorn workers as there are cores (ours is nginx with 2 workers, one verifier, one API",
    "  process). Multi-worker uvicorn loses TCP_NODELAY (uvicorn issue 3149: a ~40 ms stall per",
    "  keep-alive request), so the in-app apps bind their listener with the protocol set.",
    "- **Rows**: nginx's static `/healthz`; a bare FastAPI endpoint served as ours (same uvicorn",
    "  options, loop, parser, one worker); our API's `/api/healthz` straight, to split nginx from the",
    "  API; the in-app design (FastAPI validating the bearer with PyJWT in-process, keys fetched from",
    "  devidp's JWKS at start-up, its `/api/me` built as lean as ours) and the same with",
    "  `fastapi-azure-auth` (pointed at devidp through `openid_config_url` and an `ssl.SSLContext`,",
    "  unpatched); the plain oauth2-proxy design (nginx `auth_request` straight to oauth2-proxy",
    "  `/oauth2/auth`, the session's access token forwarded in `Authorization` to the in-app app,",
    "  which validates it itself); our edge's bearer, cookie and page paths and a hashed build file on",
    "  both session designs; the cookie and page paths again through a second verifier with the",
    "  session cache off (`VERIFIER_SESSION_CACHE_SECONDS=0`: every request asks oauth2-proxy and",
    "  Redis, as the first request of each burst does; wrk sends one cookie, so with the cache on",
    "  nearly every request is answered from it); `--tokens` distinct valid tokens per repetition",
    "  (devidp's claims re-signed with its own key, a fresh `uti` each: a verifier token-cache miss",
    "  until wrk wraps around, see the note under the table); a refused token (bad signature) on both",
    "  designs. Under the table: what the edge answers a valid request that carries 200 extra headers.",
]


def server_flavour() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    # What uvicorn's "auto" picks from what is installed; fastapi_app names uvloop and httptools.
    return f"{loop} loop and the {http} HTTP parser"


def write_readme_section(readme: Path, table: str) -> None:
    """Replace the text between the bench-edge markers (append the section when they are absent)."""
    text = readme.read_text(encoding="utf-8")
    section = f"{BEGIN_MARKER}\n{table}{END_MARKER}"
    pattern = re.compile(re.escape(BEGIN_MARKER) + r".*?" + re.escape(END_MARKER), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text, encoding="utf-8")
