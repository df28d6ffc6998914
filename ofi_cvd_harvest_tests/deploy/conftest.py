"""A Dagster instance on the real PostgreSQL test server, configured by the shipped
``deploy/dagster.postgres.yaml`` (docs/deploy.md "One box + PostgreSQL").

``pg_home``      a DAGSTER_HOME holding the shipped config, a database of its own in
                 ``pg_server``, ``DAGSTER_HOME`` / ``DAGSTER_POSTGRES_URL`` exported
``pg_instance``  the DagsterInstance loaded from it
``sqlite_home``  a DAGSTER_HOME holding the project's ``dagster.yaml`` (SQLite), exported
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_YAML = ROOT / "deploy" / "dagster.postgres.yaml"
SQLITE_YAML = ROOT / "dagster.yaml"


@dataclass
class PgHome:
    home: Path
    url: str
    db: str
    server: object

    def sql(self, statement: str) -> list[str]:
        """Rows of ``statement`` in this instance's database (psql, one line per row)."""
        out = self.server.sql(statement, db=self.db).stdout
        return [line for line in out.splitlines() if line]


@pytest.fixture
def pg_home(pg_server, tmp_path, monkeypatch) -> PgHome:
    db = f"dagster_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_db(db)
    home = tmp_path / "pg_home"
    home.mkdir()
    shutil.copyfile(PG_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    return PgHome(home, url, db, pg_server)


@pytest.fixture
def pg_instance(pg_home):
    with dg.DagsterInstance.from_config(str(pg_home.home)) as instance:
        yield instance


@pytest.fixture
def sqlite_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "sqlite_home"
    home.mkdir()
    shutil.copyfile(SQLITE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    return home
