"""The images, built once per test session exactly as `make images` builds them."""

from __future__ import annotations

import pytest

from tests.containers import engine


@pytest.fixture(scope="session")
def images() -> engine.Build:
    build = engine.build_images()
    print(f"\n[containers] every image of compose.yaml built in {build.seconds:.0f} s")
    return build
