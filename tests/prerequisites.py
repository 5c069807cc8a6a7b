"""What the tests need from the machine. scripts/setup.sh (which `make test` runs first) installs all
of it, so a missing piece is a failure that says what to do, never a silent skip."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NoReturn

import pytest

#: Where Debian puts nginx (not on a normal user's PATH).
_SBIN = "/usr/sbin:/usr/local/sbin:/sbin"


def missing(what: str, how: str) -> NoReturn:
    pytest.fail(
        f"{what} is missing: {how}. `make test` runs scripts/setup.sh, which installs it.", pytrace=False
    )


def require_program(name: str, debian_package: str) -> str:
    """The absolute path of ``name``, or a failure naming the Debian package that provides it."""
    found = shutil.which(name) or shutil.which(name, path=_SBIN)
    if found is None:
        missing(name, f"install Debian's {debian_package} (`apt-get install {debian_package}`)")
    return found


def require_file(path: Path, how: str) -> Path:
    if not path.exists():
        missing(str(path), how)
    return path
