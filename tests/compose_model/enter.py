"""Inside a service's own mount namespace: mount its volumes, tmpfs and image files at their container
paths, then become the service's process (argv and environment exactly as given)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def mount(target: Path, source: str | None, read_only: bool) -> None:
    # run.py made every target a real directory or file beforehand.
    if source is None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(target)], check=True)
        return
    options = "bind,ro" if read_only else "bind"
    subprocess.run(["mount", "-o", options, source, str(target)], check=True)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    # Shorter targets first, so a file inside a mounted folder lands in it.
    for entry in sorted(spec["mounts"], key=lambda m: len(m["target"])):
        mount(Path(entry["target"]), entry["source"], entry["read_only"])
    os.chdir("/")
    argv = spec["argv"]
    os.execvpe(argv[0], argv, os.environ)


if __name__ == "__main__":
    main()
