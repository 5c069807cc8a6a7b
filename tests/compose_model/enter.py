"""Inside a service's own mount namespace: mount its volumes, tmpfs and image files at their container
paths, then become the service's process (argv and environment exactly as given)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Where run.py bound the machine's own root inside the shadow root.
HOST_ROOT = "/.host"


def mount(target: Path, source: str | None, read_only: bool) -> None:
    # run.py made every target a real directory or file beforehand.
    if source is None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(target)], check=True)
        return
    options = "bind,ro" if read_only else "bind"
    subprocess.run(["mount", "-o", options, source, str(target)], check=True)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    mounts = sorted(spec["mounts"], key=lambda m: len(m["target"]))
    # Sources are resolved before anything is mounted: a tmpfs at a container path such as /tmp would
    # otherwise hide a source below it (a checkout under /tmp, say), and the resolved path goes
    # through the machine's root bound at /.host, which no service mount covers.
    for entry in mounts:
        if entry["source"] is not None:
            entry["source"] = os.path.realpath(entry["source"])
    # Shorter targets first, so a file inside a mounted folder lands in it.
    for entry in mounts:
        mount(Path(entry["target"]), entry["source"], entry["read_only"])
    # The project's packages are installed editable: their checkout must stay visible at its own
    # path even when a service's tmpfs covers it.
    for kept in spec.get("keep_visible", []):
        path = Path(kept)
        if not (path / "pyproject.toml").exists():
            path.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", "-o", "ro", HOST_ROOT + kept, kept], check=True)
    os.chdir("/")
    argv = spec["argv"]
    os.execvpe(argv[0], argv, os.environ)


if __name__ == "__main__":
    main()
