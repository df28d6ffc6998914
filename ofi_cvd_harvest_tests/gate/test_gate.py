"""The DQ gate as plain Python (what ``derive`` and the multi-asset both call), on real files:
write → audit → publish, quarantine with a verdict, explicit acceptance, subsets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ofi_cvd_harvest.dq.base import MetricResult
from ofi_cvd_harvest.gate import checks as registry
from ofi_cvd_harvest.gate.publish import NothingQuarantined, accept
from ofi_cvd_harvest.gate.run import gate_partition
from ofi_cvd_harvest.gate.verdict import Acceptance
from ofi_cvd_harvest.settings import load_settings
from ofi_cvd_harvest.storage.fs import Storage

from ..orchestration.rawfixtures import write_raw
from .rawedit import KINDS, cross_book, published, rescale, short_capture, table_bytes

DATE, SYM = "2024-07-19", "BTCUSDT"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    write_raw(d, DATE, SYM, minutes=6)
    return d


def gate(data, kinds=None, **kw):
    return gate_partition(Storage(data), load_settings(env={}, data_dir=data), DATE, SYM, kinds,
                          run="test", **kw)


def quarantine(data) -> Path:
    return data / f"quarantine/date={DATE}/symbol={SYM}"


def leftovers(data) -> list[str]:
    """Anything in the staging area but its lock file."""
    return sorted(str(p.relative_to(data)) for p in (data / ".staging").rglob("*")
                  if p.name != ".lock" and p.is_file())


def test_clean_partition_publishes_all_five(data):
    out = gate(data)
    assert out.status == "published" and out.failed == []
    assert sorted(table_bytes(data, DATE, SYM)) == sorted(KINDS)
    assert not quarantine(data).exists() and leftovers(data) == []
    assert not list(data.rglob("*.tmp"))
    # every check of the registry ran, on the staged tables
    assert [c.name for c, _ in out.results] == [c.name for c in registry.DOD_CHECKS]


def test_failing_partition_is_quarantined_and_the_lake_untouched(data):
    gate(data)
    before = published(data)
    cross_book(data, DATE, SYM)
    out = gate(data)
    assert out.status == "quarantined" and out.failed == ["crossed_book_rows"]
    assert published(data) == before                          # byte for byte
    assert sorted(p.name for p in quarantine(data).iterdir()) == ["dq.json"] + [f"kind={k}" for k in sorted(KINDS)]
    v = json.loads((quarantine(data) / "dq.json").read_text())
    assert v["status"] == "quarantined" and v["failed_checks"] == ["crossed_book_rows"]
    assert v["partition"] == f"{DATE}|{SYM}" and v["run"] == "test" and v["time"].startswith("20")
    assert v["consecutive_failures"] == 1 and v["accepted"] is None
    crossed = next(c for c in v["checks"] if c["name"] == "crossed_book_rows")
    assert crossed == {**crossed, "passed": False, "value": 1, "threshold": 0, "comparison": "==",
                       "blocking": True, "asset": "ofi"}
    assert crossed["details"]["first_crossed"]
    assert len(v["checks"]) == len(registry.DOD_CHECKS)
    assert leftovers(data) == []
    # failing again counts the failures in a row (the sensor backs off on it)
    assert gate(data).status == "quarantined"
    assert json.loads((quarantine(data) / "dq.json").read_text())["consecutive_failures"] == 2


def test_clean_rederive_replaces_the_quarantined_version(data):
    good = gate(data)
    assert good.published
    first = table_bytes(data, DATE, SYM)
    f = sorted((data / f"raw/date={DATE}/symbol={SYM}/stream=book").glob("*.parquet"))[1]
    original = f.read_bytes()
    cross_book(data, DATE, SYM)
    assert gate(data).status == "quarantined" and quarantine(data).exists()
    f.write_bytes(original)                                  # the defect repaired
    assert gate(data).status == "published"
    assert not quarantine(data).exists() and not (data / "quarantine").exists()
    assert table_bytes(data, DATE, SYM) == first             # deterministic to the bit


def test_a_20_second_capture_fails_empty_bucket_rate(tmp_path):
    data = tmp_path / "data"
    write_raw(data, DATE, SYM, minutes=1)
    short_capture(data, DATE, SYM, seconds=20)
    out = gate(data)
    assert out.status == "quarantined" and "empty_bucket_rate" in out.failed
    r = dict((c.name, r) for c, r in out.results)["empty_bucket_rate"]
    assert "shorter than one minute" in r.details["error"]
    assert not (data / "ofi_cvd").exists()                   # not even prices


def test_a_failing_non_blocking_check_never_holds_back(data, monkeypatch):
    noisy = registry.DodCheck("always_noisy", "events", False, "a WARN check that fails",
                              severity="WARN",
                              metric=lambda ev: MetricResult("always_noisy", 999, 300, False, {}, "<="))
    monkeypatch.setattr(registry, "DOD_CHECKS", (*registry.DOD_CHECKS, noisy))
    out = gate(data)
    assert out.status == "published" and out.warnings == ["always_noisy"] and out.failed == []
    assert "warnings: always_noisy" in out.summary()


def test_subset_publishes_only_the_selected_table_but_gates_on_the_partition(data):
    gate(data)
    before = table_bytes(data, DATE, SYM)
    rescale(data, DATE, SYM)                                 # every table would change
    out = gate(data, ["cvd"])
    assert out.status == "published" and list(out.paths) == ["cvd"]
    after = table_bytes(data, DATE, SYM)
    assert after["cvd"] != before["cvd"]
    assert {k: v for k, v in after.items() if k != "cvd"} == {k: v for k, v in before.items() if k != "cvd"}
    # an ofi defect also holds cvd back (the checks judge the partition), and only cvd is quarantined
    cross_book(data, DATE, SYM)
    out = gate(data, ["cvd"])
    assert out.status == "quarantined" and out.failed == ["crossed_book_rows"]
    assert table_bytes(data, DATE, SYM) == after
    assert list(table_bytes(data, DATE, SYM, "quarantine")) == ["cvd"]


def test_dry_run_publishes_and_quarantines_nothing(data):
    cross_book(data, DATE, SYM)
    out = gate(data, dry_run=True)
    assert out.status == "dry-run" and out.failed == ["crossed_book_rows"]
    assert not (data / "ofi_cvd").exists() and not (data / "quarantine").exists()
    assert leftovers(data) == []


def test_publish_on_fail_publishes_and_records_who(data):
    cross_book(data, DATE, SYM)
    out = gate(data, accept=Acceptance("alice@desk", "test"))
    assert out.status == "accepted" and sorted(table_bytes(data, DATE, SYM)) == sorted(KINDS)
    v = json.loads((quarantine(data) / "dq.json").read_text())
    assert v["status"] == "accepted" and v["accepted"]["by"] == "alice@desk"
    assert v["accepted"]["failed_checks"] == ["crossed_book_rows"] and v["accepted"]["at"]
    assert [p.name for p in quarantine(data).iterdir()] == ["dq.json"]   # no tables left there


def test_publish_command_moves_the_quarantined_partition_into_place(data):
    gate(data)
    cross_book(data, DATE, SYM)
    assert gate(data).status == "quarantined"
    held = table_bytes(data, DATE, SYM, "quarantine")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "publish", "--date", DATE,
                           "--symbol", SYM.lower(), "--data-dir", str(data), "--by", "bob"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "accepted by bob; failed checks: crossed_book_rows" in proc.stdout
    assert table_bytes(data, DATE, SYM) == held              # exactly the quarantined tables
    v = json.loads((quarantine(data) / "dq.json").read_text())
    assert v["status"] == "accepted" and v["accepted"]["via"] == "ofi-cvd-harvest publish"
    assert v["accepted"]["by"] == "bob" and v["failed_checks"] == ["crossed_book_rows"]
    # nothing left to publish: says so, exit 1
    with pytest.raises(NothingQuarantined, match="dq.json says 'accepted'"):
        accept(data, DATE, SYM, Acceptance("bob", "test"))
    proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "publish", "--date", DATE,
                           "--symbol", "ETHUSDT", "--data-dir", str(data)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no quarantined tables" in proc.stdout
