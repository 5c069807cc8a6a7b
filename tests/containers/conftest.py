"""The images, built once per test session exactly as `make images` builds them."""

from __future__ import annotations

import pytest

from tests.containers import engine


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest) -> engine.Build:
    build = engine.build_images()
    sizes = {
        name: int(engine.docker("image", "inspect", "--format", "{{.Size}}", engine.image(name)).stdout) / 1e6
        for name in (*engine.SHIPPED_IMAGES, *engine.DEVELOPMENT_IMAGES)
    }
    # Printed in every run's output, past pytest's capture: the build time, cold or warm, and the sizes.
    line = f"[containers] base image and every image of compose.yaml ready in {build.seconds:.0f} s; " + (
        ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items())
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + line, flush=True)
    return build
