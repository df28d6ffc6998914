"""The instance's PostgreSQL URL must name the psycopg2 driver (ofi_cvd_harvest/deploy/instance.py):
anything else is refused with one line where a user meets it first — ``ofi-cvd-harvest instance
check``, ``ofi-cvd-harvest-ui`` and the loading of the definitions (code server, run worker) —
instead of Dagster's traceback at start-up or failing runs later."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from ofi_cvd_harvest import cli
from ofi_cvd_harvest.deploy.instance import (InstanceUrlError, check_instance, instance_problems,
                                             redact, url_problem)
from ofi_cvd_harvest.orchestration import ui

from .conftest import ROOT

GOOD = "postgresql+psycopg2://dagster:s3cret@db.internal:5432/dagster"


@pytest.mark.parametrize("url, expected", [
    (GOOD, None),
    ("postgresql+psycopg2://postgres@127.0.0.1/d?sslmode=require", None),
    ("postgresql://dagster:s3cret@db.internal:5432/dagster",
     "names no driver: use postgresql+psycopg2://dagster:***@db.internal:5432/dagster"),
    ("postgres://dagster@db:5432/dagster", "names no driver: use postgresql+psycopg2://dagster@db"),
    ("postgresql+psycopg://u:p@h/d", "names driver 'psycopg': use postgresql+psycopg2://u:***@h/d"),
    ("postgresql+asyncpg://h/d", "names driver 'asyncpg'"),
    ("POSTGRESQL://h/d", "names no driver"),
    ("mysql://u:p@h/d", "must be a postgresql+psycopg2:// URL, not mysql://u:***@h/d"),
    ("sqlite:////tmp/x.db", "must be a postgresql+psycopg2:// URL"),
    ("db.internal:5432/dagster", "is not a URL"),
    ("", "is empty"),
    ("   ", "is empty"),
    (None, "is not set"),
    (" " + GOOD, "contains spaces or control characters"),
    (GOOD + "\n", "contains spaces or control characters"),
    ("postgresql+psycopg2://u:p@h/d\nDROP TABLE runs", "contains spaces or control characters"),
    ("postgresql://u:p@[::1/d", "names no driver"),
])
def test_url_problem_is_one_line_without_the_password(url, expected):
    problem = url_problem(url)
    if expected is None:
        assert problem is None
        return
    assert problem.startswith("DAGSTER_POSTGRES_URL ") and expected in problem
    assert "\n" not in problem and "\r" not in problem
    assert "s3cret" not in problem and ":p@" not in problem


def test_redact_hides_only_the_password():
    assert redact(GOOD) == "postgresql+psycopg2://dagster:***@db.internal:5432/dagster"
    assert redact("postgresql+psycopg2://dagster@h/d") == "postgresql+psycopg2://dagster@h/d"
    assert redact("postgresql://u:p@ss@h/d") == "postgresql://u:***@h/d"   # '@' in the password


def test_instance_config_is_read_for_its_urls(tmp_path):
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url:\n      env: MY_PG\n")
    assert instance_problems(tmp_path, {"MY_PG": GOOD}) == []
    [missing] = instance_problems(tmp_path, {})
    assert missing.startswith("MY_PG is not set") and "storage.postgres.postgres_url reads it" in missing
    [bare] = instance_problems(tmp_path, {"MY_PG": "postgresql://h/d"})
    assert bare.startswith("MY_PG names no driver")
    # a literal URL in the file, per storage
    (tmp_path / "dagster.yaml").write_text(
        "run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
        "  config:\n    postgres_url: postgresql://h/d\n")
    [literal] = instance_problems(tmp_path, {})
    assert literal.startswith("run_storage.config.postgres_url in ") and "names no driver" in literal
    (tmp_path / "dagster.yaml").write_text("storage: [unclosed\n")
    [broken] = instance_problems(tmp_path, {})
    assert "unreadable instance config" in broken and "\n" not in broken
    # SQLite instance: an unrelated DAGSTER_POSTGRES_URL is not its business
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    assert instance_problems(tmp_path, {"DAGSTER_POSTGRES_URL": "postgresql://h/d"}) == []
    # no config file: DAGSTER_POSTGRES_URL, when set, is checked
    empty = tmp_path / "nothing"
    assert instance_problems(empty, {}) == []
    assert instance_problems(empty, {"DAGSTER_POSTGRES_URL": "postgresql://h/d"})
    with pytest.raises(InstanceUrlError, match="names no driver"):
        check_instance(empty, {"DAGSTER_POSTGRES_URL": "postgresql://h/d"})


def test_bare_url_against_the_real_server(pg_home, monkeypatch, capsys):
    """What Dagster does with a bare URL (here: no psycopg 3 installed, as requirements.lock
    pins): every process dies loading the instance on a missing module. With psycopg 3 installed
    the instance would load and each run fail on its first event (NOTIFY; docs/deploy.md).
    ``ofi-cvd-harvest instance check`` says what to do instead, in one line, exit 2."""
    bare = pg_home.url.replace("postgresql+psycopg2://", "postgresql://")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", bare)
    with pytest.raises(ModuleNotFoundError, match="psycopg"):
        dg.DagsterInstance.from_config(str(pg_home.home))
    assert cli.main(["instance", "check"]) == 2
    err = capsys.readouterr().err
    assert err == (f"ofi-cvd-harvest: DAGSTER_POSTGRES_URL names no driver: use {pg_home.url} "
                   "(SQLAlchemy 2.1 maps postgresql:// to psycopg 3, which dagster-postgres "
                   "cannot use; docs/deploy.md)\n")
    assert pg_home.sql("select count(*) from pg_tables where schemaname = 'public'") == ["0"]


def test_ui_refuses_before_starting_anything(pg_home, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgres://" + pg_home.url.split("://", 1)[1])
    started = []
    monkeypatch.setattr(ui.subprocess, "Popen", lambda *a, **k: started.append(a))
    assert ui.main(["--dagster-home", str(pg_home.home), "--no-simulator"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ofi-cvd-harvest-ui: DAGSTER_POSTGRES_URL names no driver: use "
                          f"{pg_home.url} ") and err.count("\n") == 1
    assert started == []


def test_definitions_refuse_to_load(tmp_path):
    """A code server or run worker on a bad URL stops with the line, whatever the traceback."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(home),
           "DAGSTER_POSTGRES_URL": "postgresql://dagster@127.0.0.1:1/dagster"}
    proc = subprocess.run([sys.executable, "-c", "import ofi_cvd_harvest.definitions"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "ofi_cvd_harvest.deploy.instance.InstanceUrlError: DAGSTER_POSTGRES_URL names no driver: "
        "use postgresql+psycopg2://dagster@127.0.0.1:1/dagster (SQLAlchemy 2.1 maps postgresql:// "
        "to psycopg 3, which dagster-postgres cannot use; docs/deploy.md)")
