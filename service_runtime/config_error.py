"""The one error every service raises for an unusable configuration: the verifier's and the API's
environment, the verifier's route policy file, devidp's TOML file.

It lists every problem at once, each naming its variable or its place in the file, so one start
tells the operator everything to fix rather than one problem per attempt.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """``source`` (where the configuration came from) is unusable for each reason in ``problems``."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} configuration problem(s):\n{lines}")
