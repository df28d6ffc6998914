"""Materialise the five derived assets for one date|SYMBOL partition in a real Dagster run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest.orchestration.assets import (derive_job, derived_assets, markdown_preview,
                                                  summarize)
from ofi_cvd_harvest.orchestration.partitions import register_symbols
from ofi_cvd_harvest.orchestration.raw_assets import raw_specs
from ofi_cvd_harvest.orchestration.resources import HarvestSettings
from ofi_cvd_harvest.schemas import DERIVED_SCHEMAS

from .rawfixtures import write_raw

pytest.importorskip("ofi_cvd_harvest.signals.derive")

KINDS = ["prices", "ofi", "cvd", "fusion", "events"]
PARTITION = "2024-07-19|BTCUSDT"
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _materialization(instance, kind, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(kind), asset_partitions=[partition]), limit=1)
    assert records.records, f"no materialisation of {kind} {partition}"
    return records.records[0].asset_materialization


def test_materialise_all_five_assets_for_a_partition(tmp_path, instance, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    data = tmp_path / "data"
    raw = write_raw(data, "2024-07-19", "BTCUSDT", minutes=20)
    register_symbols(instance, ["BTCUSDT"])   # as the sensors or the code location's load do
    result = dg.materialize(
        [*raw_specs, *derived_assets], partition_key=PARTITION, instance=instance,
        resources={"harvest": HarvestSettings(data_dir=str(data))}, selection=KINDS)
    assert result.success

    for kind in KINDS:
        path = data / f"ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind={kind}/part-00000.parquet"
        assert path.exists()
        table = pq.read_table(path)
        assert table.schema.equals(DERIVED_SCHEMAS[kind], check_metadata=False)
        mat = _materialization(instance, kind, PARTITION)
        md = mat.metadata
        assert md["dagster/row_count"].value == table.num_rows
        assert md["path"].value == str(path)
        assert md["preview"].value.startswith("| ts_ms |")
        assert isinstance(md["null_counts"].value, dict)
        assert isinstance(md["flag_counts"].value, dict)
        if table.num_rows:
            assert md["first_ts"].value.startswith("2024-07-19T00:")
    # a row per unique trade / per book row, as docs/signals.md says
    assert pq.read_table(data / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind=prices").num_rows == raw["agg_trade"]
    assert pq.read_table(data / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind=ofi").num_rows == raw["book"]
    events = pl.read_parquet(data / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind=events/*.parquet")
    cats = {json.loads(m)["category"] for m in events["meta_json"]}
    assert "ops" in cats  # the partition's ops event is carried into events
    ofi_md = _materialization(instance, "ofi", PARTITION).metadata
    assert ofi_md["flag_counts"].value["gap"] == 1  # the fixture's first row after connect

    # rebuilding the partition replaces the files with identical values
    before = {k: pl.read_parquet(data / f"ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind={k}/part-00000.parquet")
              for k in KINDS}
    assert dg.materialize([*raw_specs, *derived_assets], partition_key=PARTITION, instance=instance,
                          resources={"harvest": HarvestSettings(data_dir=str(data))},
                          selection=KINDS).success
    for k in KINDS:
        files = list((data / f"ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind={k}").iterdir())
        assert [f.name for f in files] == ["part-00000.parquet"]
        assert pl.read_parquet(files[0]).equals(before[k])


def test_summary_and_preview_helpers():
    df = pl.DataFrame({"ts_ms": [1721347200000, 1721347260000], "gap": [True, False],
                       "regime": ["warmup", "A_H"], "x": [None, 1.5]})
    info = summarize(df)
    assert info["rows"] == 2 and info["covered_hours"] == round(60 / 3600, 3)
    assert info["null_counts"] == {"x": 1} and info["flag_counts"] == {"gap": 1}
    assert info["regime_counts"] == {"A_H": 1, "warmup": 1}
    md = markdown_preview(df, n=1)
    assert md.splitlines()[0] == "| ts_ms | gap | regime | x |" and "1 more rows" in md


def dagster_cli(tmp_path, data, args: list[str], ok: bool = True) -> str:
    """A ``dagster`` command on a real instance (``DAGSTER_HOME`` under tmp_path); its output."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATA_DIR": str(data), "SYMBOLS": "BTCUSDT"}
    env.pop("OFI_CVD_CAPTURE_AUTOSTART", None)
    proc = subprocess.run([DAGSTER, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0 and "RUN_SUCCESS" in out, out[-4000:]
    return out


def test_derive_job_and_a_cvd_subset_from_the_cli(tmp_path):
    """``dagster job execute -j derive_job --tags`` runs the gate in one process and publishes
    the five tables; ``dagster asset materialize --select cvd`` then rewrites cvd alone."""
    assert derive_job.executor_def.name == "in_process"
    data = tmp_path / "data"
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=6)
    base = data / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT"
    out = dagster_cli(tmp_path, data, ["job", "execute", "-m", "ofi_cvd_harvest.definitions", "-j",
                                       "derive_job", "--tags", json.dumps({"dagster/partition": PARTITION})])
    assert "Executing steps in process" in out and out.count("computed from") == 1
    assert "gate 2024-07-19|BTCUSDT: published prices,ofi,cvd,fusion,events" in out
    files = {k: base / f"kind={k}/part-00000.parquet" for k in KINDS}
    stat = {k: (f.stat().st_ino, f.stat().st_mtime_ns) for k, f in files.items()}
    out = dagster_cli(tmp_path, data, ["asset", "materialize", "-m", "ofi_cvd_harvest.definitions",
                                       "--select", "cvd", "--partition", PARTITION])
    assert "gate 2024-07-19|BTCUSDT: published cvd" in out
    assert "ASSET_CHECK_EVALUATION - Asset check 'winsor_effect' on 'cvd' passed" in out
    assert "on 'prices'" not in out                        # only the selected asset's checks
    now = {k: (f.stat().st_ino, f.stat().st_mtime_ns) for k, f in files.items()}
    assert [k for k in KINDS if now[k] != stat[k]] == ["cvd"]   # only cvd replaced
    assert not list((data / ".staging").rglob("*.parquet"))
