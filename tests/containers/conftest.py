"""The images, built once per test session exactly as `make images` builds them."""

from __future__ import annotations

import pytest

from tests.containers import engine


@pytest.fixture(scope="session")
def images() -> engine.Build:
    build = engine.build_images()
    sizes = {
        name: int(engine.docker("image", "inspect", "--format", "{{.Size}}", engine.image(name)).stdout) / 1e6
        for name in (*engine.SHIPPED_IMAGES, *engine.DEVELOPMENT_IMAGES)
    }
    print(f"\n[containers] every image of compose.yaml built in {build.seconds:.0f} s; sizes: "
          + ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items()))
    return build
