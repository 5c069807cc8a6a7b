"""``python -m verifier`` refuses to start on bad configuration, naming every variable at fault."""

from __future__ import annotations

import subprocess
import sys


def test_bad_environment_exits_non_zero_listing_every_problem():
    env = {"PATH": "/usr/bin:/bin", "VERIFIER_TENANT_IDS": "nope", "VERIFIER_PORT": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "verifier"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    for name in ("VERIFIER_TENANT_IDS", "VERIFIER_AUDIENCES", "VERIFIER_PORT", "IDENTITY_SIGNING_KEY"):
        assert name in result.stderr
