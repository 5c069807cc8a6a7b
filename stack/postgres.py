"""A throw-away PostgreSQL cluster on 127.0.0.1: Debian's ``postgresql`` binaries, a temporary folder.

``PostgresCluster(port).init()`` runs ``initdb`` into a fresh folder with a random password for its
one superuser; :attr:`PostgresCluster.process` is the server as a :class:`ManagedProcess` (so the
launcher starts, probes, stops and restarts it like every other component); :meth:`cleanup` removes
the folder. The end-to-end and API tests use it as is; ``python -m stack up --database postgres``
puts it in the stack.

PostgreSQL refuses to run as root. As root, the folder is handed to the ``postgres`` system user
(created by Debian's package) and every PostgreSQL program is started through ``setpriv`` as that
user; the folder is made under the system's temporary directory because the stack's own run folder
is usually private to root. Durability is switched off (``fsync``, ``full_page_writes``,
``synchronous_commit``): the cluster is thrown away, and the tests want it fast.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from stack.processes import ManagedProcess, Probe, StackError

SUPERUSER = "edge"
DATABASE = "edge_api"
#: The unprivileged account PostgreSQL runs as when the launcher runs as root.
SYSTEM_USER = "postgres"
INSTALL_HINT = "Install Debian's postgresql package (`apt-get install postgresql`) or run `make setup`."


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: on PATH, else Debian's newest version folder."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise StackError(
            f"PostgreSQL is missing: no initdb on PATH or in /usr/lib/postgresql. {INSTALL_HINT}"
        )
    return versions[-1].parent


def _pg_isready_probe(bin_dir: Path, host: str, port: int) -> Probe:
    """Ready means accepting connections, not merely listening (it listens while still recovering)."""

    def probe() -> bool:
        result = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", host, "-p", str(port), "-t", "1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0

    return probe


@dataclass
class PostgresCluster:
    port: int
    host: str = "127.0.0.1"
    #: Where the server's log goes (the stack's logs folder); default: inside the cluster folder.
    log_path: Path | None = None
    bin_dir: Path = field(default_factory=find_bin_dir)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    root: Path | None = field(default=None, init=False)
    process: ManagedProcess | None = field(default=None, init=False)
    _database_created: bool = field(default=False, init=False)

    @property
    def data_dir(self) -> Path:
        if self.root is None:
            raise StackError("the PostgreSQL cluster has not been initialised: call init()")
        return self.root / "data"

    def url(self, database: str = DATABASE) -> str:
        """The API's ``API_DATABASE_URL`` for ``database`` in this cluster."""
        return (
            f"postgresql+asyncpg://{SUPERUSER}:{quote(self.password, safe='')}@{self.host}:{self.port}/"
            f"{quote(database, safe='')}"
        )

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--clear-groups", "--", *argv]

    def init(self) -> PostgresCluster:
        """initdb into a new temporary folder, and make :attr:`process` (not started yet)."""
        running_as_root = os.geteuid() == 0
        owner = None
        if running_as_root:
            try:
                owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise StackError(
                    f"PostgreSQL refuses to run as root and there is no {SYSTEM_USER!r} user to run it as. "
                    f"{INSTALL_HINT}"
                ) from None
        self.root = Path(tempfile.mkdtemp(prefix="entra-bff-edge-postgres-"))
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        if owner is not None:
            for path in (self.root, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        initdb = self._as_owner(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", SUPERUSER,
                "--pwfile", str(password_file),
                "--auth", "scram-sha-256",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
            ]
        )  # fmt: skip
        result = subprocess.run(
            initdb, cwd=self.root, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        password_file.unlink()
        if result.returncode != 0:
            raise StackError(f"initdb failed (status {result.returncode}):\n{result.stderr[-2000:]}")
        server = self._as_owner(
            [
                str(self.bin_dir / "postgres"),
                "-D", str(self.data_dir),
                "-h", self.host,
                "-p", str(self.port),
                # The Unix socket stays in the cluster's own folder, not the system's /run/postgresql.
                "-k", str(self.root),
                "-c", "fsync=off",
                "-c", "full_page_writes=off",
                "-c", "synchronous_commit=off",
                "-c", "max_connections=200",
            ]
        )  # fmt: skip
        self.process = ManagedProcess(
            "PostgreSQL",
            server,
            self.port,
            _pg_isready_probe(self.bin_dir, self.host, self.port),
            self.log_path or self.root / "postgres.log",
            cwd=self.root,
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every pooled client to leave.
            stop_signal=signal.SIGINT,
        )
        return self

    def start(self) -> PostgresCluster:
        if self.process is None:
            self.init()
        assert self.process is not None
        self.process.start(self.host)
        self.process.wait_ready()
        if not self._database_created:
            self.create_database(DATABASE)
            self._database_created = True
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process.wait_port_released(self.host)

    def cleanup(self) -> None:
        """Stop the server and delete the cluster's folder."""
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.process = None
            self._database_created = False

    def create_database(self, name: str) -> str:
        """Create the empty database ``name``; return its URL."""
        self.run_sql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.run_sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def run_sql(self, database: str, sql: str) -> None:
        """Run ``sql`` (trusted text, never request data) in ``database`` as the superuser, with psql."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p",
             str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"psql failed: {result.stderr.strip()[-500:]}")

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.cleanup()
