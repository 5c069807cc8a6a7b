"""Start-up configuration checks: every problem is reported at once, each naming its variable."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from service_runtime.config_error import ConfigError
from verifier.service.settings import settings_from_env


def problems_naming(env: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """The problems ``settings_from_env(env)`` reports, after checking that one starts with each name."""
    with pytest.raises(ConfigError) as caught:
        settings_from_env(env)
    problems = caught.value.problems
    for name in names:
        assert any(problem.startswith(name) for problem in problems), (name, problems)
    return problems
