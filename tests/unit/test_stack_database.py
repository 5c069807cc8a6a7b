"""The launcher's choice of the API's database: SQLite in the run folder unless PostgreSQL is asked for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from stack.__main__ import _parser
from stack.launcher import Stack
from stack.processes import StackError
from stack.render import TemplateError, api_database_env
from stack.topology import Topology


def test_make_run_keeps_the_api_on_sqlite_in_the_run_folder(tmp_path: Path) -> None:
    topology = Topology(run_dir=tmp_path)
    assert topology.database == "sqlite"
    assert api_database_env(topology) == {"API_DATABASE_PATH": str(tmp_path / "api.sqlite3")}
    assert "PostgreSQL" not in topology.ports()


def test_postgres_topology_gives_the_api_the_clusters_url_and_claims_its_port(tmp_path: Path) -> None:
    topology = Topology(run_dir=tmp_path, database="postgres", postgres_port=15433)
    url = "postgresql+asyncpg://edge:pw@127.0.0.1:15433/edge_api"
    assert api_database_env(topology, url) == {"API_DATABASE_URL": url}
    assert topology.ports()["PostgreSQL"] == 15433
    with pytest.raises(TemplateError):
        api_database_env(topology)


def test_the_command_line_chooses_the_database_and_refuses_others() -> None:
    assert _parser().parse_args(["up"]).database == "sqlite"
    assert _parser().parse_args(["up", "--database", "postgres"]).database == "postgres"
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--database", "mysql"])


def test_an_unknown_database_name_is_refused_before_anything_starts(tmp_path: Path) -> None:
    stack = Stack(replace(Topology(run_dir=tmp_path), database="postgresql"))
    with pytest.raises(StackError, match="must be sqlite or postgres, not 'postgresql'"):
        stack.prepare()
    assert stack.processes == {}
    assert not (tmp_path / "tls").exists(), "refused before any file was written"
