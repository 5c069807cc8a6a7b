"""Two Fargate-shaped tasks behind HAProxy, sharing Redis (TLS, password), PostgreSQL and devidp.

One multi-task stack for the whole ``scaleout`` set (starting one takes about 20 s). It overrides the
single stack of tests/e2e/conftest.py: the helpers in edge_client take either, since both have a
``topology`` whose public origin is where browsers go (here the balancer) and a ``ca_file``.
Lifetimes are shortened as in the single stack, so the refresh test needs no long waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.scaleout import ScaleOutStack
from stack.topology import Topology, free_port, free_port_topology
from tests.e2e.conftest import ACCESS_TOKEN_SECONDS, COOKIE_REFRESH_SECONDS, LEEWAY_SECONDS
from tests.support.fault_proxy import FaultProxy

# Token timings are the single-task stack's (imported above).
#: The verifier may refetch a JWKS at most this often (an unknown kid after a key rotation).
JWKS_MIN_REFETCH_SECONDS = 1


@pytest.fixture(scope="session")
def scaleout_topology(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    return free_port_topology(
        Path(tmp_path_factory.mktemp("scaleout")),
        access_token_lifetime_seconds=ACCESS_TOKEN_SECONDS,
        cookie_refresh_seconds=COOKIE_REFRESH_SECONDS,
        verifier_leeway_seconds=LEEWAY_SECONDS,
        postgres_port=free_port(),
        extra_env=(("VERIFIER_JWKS_MIN_REFETCH_SECONDS", str(JWKS_MIN_REFETCH_SECONDS)),),
    )


@pytest.fixture(scope="session")
def redis_relay(scaleout_topology: Topology) -> Iterator[FaultProxy]:
    """What every task reaches Redis through: a relay the fault tests make reset or refuse
    connections. Listening before the tasks' ports are chosen, so none of them takes its port."""
    relay = FaultProxy(
        (scaleout_topology.bind_host, free_port()),
        (scaleout_topology.bind_host, scaleout_topology.redis_port),
        (scaleout_topology.bind_host, free_port()),
        scaleout_topology.run_dir / "redis-relay.log",
    ).start()
    yield relay
    relay.stop()


@pytest.fixture(scope="session")
def stack(scaleout_topology: Topology, redis_relay: FaultProxy) -> Iterator[ScaleOutStack]:
    running = ScaleOutStack(scaleout_topology, tasks=2, redis_client_port=redis_relay.listen[1])
    running.shared.prepare()
    # The key-rotation test rotates devidp's signing keys through its admin endpoint.
    running.shared.processes["devidp"].argv.append("--enable-admin")
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session", autouse=True)
def early_daemon_token() -> None:
    """The single stack's early token is not needed here (and would start that stack)."""
    return None
