"""scripts/docker-engine.sh, which `make test` runs the tests under: it uses an engine that answers,
starts Debian's dockerd for the run where none does (as root), stops it whatever the command's end,
passes the command's exit status on, and fails with what to install where it can do neither.

The script runs for real in a copy of the checkout, with `docker`, `dockerd` and `id` replaced by
small scripts: the fake engine "answers" while its dockerd runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "docker-engine.sh", checkout / "scripts")
    fake = tmp_path / "bin"
    fake.mkdir()
    state = tmp_path / "engine-up"
    # docker: answers while the fake dockerd runs (its marker file exists).
    write(fake / "docker", f'[ -f "{state}" ]\n')
    # dockerd: says its version, else runs until SIGTERM, like the real one, and records its pid.
    write(
        fake / "dockerd",
        f"""\
        [ "$1" = --version ] && {{ echo "Docker version 20.10.24+dfsg1, build 297e128"; exit 0; }}
        echo $$ > "{tmp_path}/dockerd.pid"
        trap 'rm -f "{state}"; exit 0' TERM
        touch "{state}"
        while :; do sleep 0.1; done
        """,
    )
    write(fake / "id", 'echo "${FAKE_UID:-0}"\n')
    return checkout


def run(
    machine: Path, *command: str, uid: int = 0, engine_up: bool = False
) -> subprocess.CompletedProcess[str]:
    if engine_up:
        (machine.parent / "engine-up").touch()
    env = {"PATH": f"{machine.parent / 'bin'}:/usr/bin:/bin", "FAKE_UID": str(uid)}
    return subprocess.run(
        ["bash", str(machine / "scripts" / "docker-engine.sh"), *command],
        cwd=machine, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def dockerd_pid(machine: Path) -> int | None:
    pid_file = machine.parent / "dockerd.pid"
    return int(pid_file.read_text()) if pid_file.exists() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_engine_that_answers_is_used_as_it_is(machine: Path) -> None:
    done = run(machine, "sh", "-c", "echo ran", engine_up=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran\n"
    assert dockerd_pid(machine) is None


def test_as_root_without_an_engine_dockerd_runs_for_the_command_and_stops_after_it(machine: Path) -> None:
    done = run(machine, "sh", "-c", "docker && echo engine-answered; exit 3")
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[setup] starting dockerd 20.10.24+dfsg1 in the background for this run")
    assert "(log: run/dockerd.log)" in lines[0]
    assert lines[1] == "engine-answered"
    pid = dockerd_pid(machine)
    assert pid is not None
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "dockerd is still running after the command ended"
    assert not (machine.parent / "engine-up").exists()


def test_without_an_engine_and_not_root_it_fails_saying_what_to_do(machine: Path) -> None:
    done = run(machine, "true", uid=1000)
    assert done.returncode == 1
    assert "no Docker engine answers" in done.stderr and "docker.io" in done.stderr
    assert dockerd_pid(machine) is None
