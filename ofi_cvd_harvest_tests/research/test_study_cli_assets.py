"""``ofi-cvd-harvest study`` (hostile input, end to end), the Dagster assets and the
multi-day aggregate."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.cli import main
from ofi_cvd_harvest.research.aggregate import aggregate
from ofi_cvd_harvest.sim.market import StudyMode

from .simstudy import DAY, simulated_partition

SYM = "BTCUSDT"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli")
    simulated_partition(path, SYM, 8, StudyMode(planted_sec=10))
    return path


@pytest.mark.parametrize("argv, code", [
    (["study", "--symbol", "BTC/USDT", "--date", DAY], 2),
    (["study", "--symbol", SYM], 2),
    (["study", "--symbol", SYM, "--date", "2025-13-45x"], 2),
    (["study", "--symbol", SYM, "--date", DAY, "--days", "0"], 2),
])
def test_bad_arguments_exit_2(argv, code, tmp_path, capsys):
    assert main([*argv, "--data-dir", str(tmp_path)]) == code
    assert "study" in capsys.readouterr().out


def test_missing_partition_exits_1(tmp_path, capsys):
    assert main(["study", "--symbol", SYM, "--date", DAY, "--data-dir", str(tmp_path)]) == 1
    assert "derive" in capsys.readouterr().out


def test_cli_writes_the_table_and_chart_and_prints_the_summary(root):
    out = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "study", "--date", DAY,
                          "--symbol", SYM, "--data-dir", str(root)],
                         capture_output=True, text=True, check=True).stdout
    assert "| ofi_z |" in out and "ofi_extreme" in out and "past midnight" in out
    path = root / "ofi_cvd" / f"date={DAY}" / f"symbol={SYM}" / "kind=study" / "part-00000.parquet"
    assert pq.read_schema(path).equals(schemas.STUDY)
    svg = ET.parse(root / "reports" / "study" / f"date={DAY}" / f"symbol={SYM}" / "study.svg")
    assert svg.getroot().tag.endswith("svg") and len(list(svg.getroot().iter())) > 20
    # nothing but the study file in its kind directory (no temp file left behind)
    assert [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"]


def test_dagster_assets_materialize(root, tmp_path):
    from ofi_cvd_harvest.orchestration.research_assets import signal_study, signal_study_multiday
    from ofi_cvd_harvest.orchestration.partitions import register_symbols
    from ofi_cvd_harvest.orchestration.resources import HarvestSettings

    def instance():
        inst = dg.DagsterInstance.ephemeral()
        register_symbols(inst, [SYM])
        return inst

    res = dg.materialize([signal_study], partition_key=f"{DAY}|{SYM}",
                         resources={"harvest": HarvestSettings(data_dir=str(root))},
                         instance=instance())
    assert res.success
    mat = res.asset_materializations_for_node("signal_study")[0]
    assert "| ofi_z |" in mat.metadata["summary"].value
    assert mat.metadata["dagster/row_count"].value > 100
    res = dg.materialize([signal_study_multiday],
                         resources={"harvest": HarvestSettings(data_dir=str(root))},
                         instance=dg.DagsterInstance.ephemeral())
    assert res.success
    md = res.asset_materializations_for_node("signal_study_multiday")[0].metadata
    assert f"{SYM}_all_days" in md
    res = dg.materialize([signal_study], partition_key=f"{DAY}|{SYM}", raise_on_error=False,
                         resources={"harvest": HarvestSettings(data_dir=str(tmp_path))},
                         instance=instance())
    assert not res.success                       # no derived tables: a clear failure
    assert "materialize the derived assets" in str(res.all_events)


def test_aggregate_weights_by_n_and_sums_counts(root):
    day = pl.read_parquet(root / "ofi_cvd" / f"date={DAY}" / f"symbol={SYM}" / "kind=study" / "part-00000.parquet")
    other = day.with_columns(pl.lit("2025-02-04").alias("date"),
                             pl.col("value") * 0.5, pl.col("n") * 3)
    agg = aggregate(pl.concat([day, other]))
    assert agg.schema == day.schema and agg["date"][0] == f"{DAY}/2025-02-04"
    key = (pl.col("measure") == "ic") & (pl.col("signal") == "ofi_z") & (pl.col("regime") == "all") \
        & (pl.col("horizon_sec") == 10)
    v, n = day.filter(key)["value"][0], day.filter(key)["n"][0]
    a = agg.filter(key).row(0, named=True)
    assert a["n"] == 4 * n and a["value"] == pytest.approx((v * n + 0.5 * v * 3 * n) / (4 * n))
    assert a["ci_low"] < a["value"] < a["ci_high"]
    cnt = (pl.col("measure") == "event_count") & (pl.col("direction") == "both") & (pl.col("regime") == "all")
    assert agg.filter(cnt)["value"].sum() == pytest.approx(1.5 * day.filter(cnt)["value"].sum())


def test_missing_tables_and_degenerate_prices_give_nulls_not_errors(root, tmp_path):
    """Only ``prices`` present (the other four absent), constant prices, and nothing at all."""
    import shutil
    from ofi_cvd_harvest.research.io import load_inputs, study_frame
    from ofi_cvd_harvest.research.run import run_study
    from ofi_cvd_harvest.research.study import compute_study
    from ofi_cvd_harvest.storage.fs import Storage
    part = f"ofi_cvd/date={DAY}/symbol={SYM}"
    shutil.copytree(root / part / "kind=prices", tmp_path / part / "kind=prices")
    res = run_study(Storage(tmp_path), DAY, SYM)
    ic = res.table.filter(pl.col("measure") == "ic")
    assert len(ic) and ic["value"].is_null().all() and (ic["n"] == 0).all()
    assert set(ic["regime"]) == {"all", "unknown"}
    assert res.table.filter(pl.col("measure") == "event_count").is_empty()
    tables = load_inputs(Storage(root), DAY, SYM)
    tables["prices"] = tables["prices"].with_columns(pl.lit(100.0).alias("price"))
    flat = study_frame(compute_study(tables, DAY), DAY, SYM)
    ic = flat.filter(pl.col("measure") == "ic")
    assert ic["value"].is_null().all() and (ic["n"] > 0).any()      # no variance: no IC
    ev = flat.filter(pl.col("measure") == "event_mean_bps")
    assert (ev["value"].drop_nulls() == 0).all()
    empty = study_frame(compute_study({k: v.clear() for k, v in tables.items()}, DAY), DAY, SYM)
    assert empty.is_empty() and empty.schema == flat.schema


def test_study_file_is_bit_identical_with_one_polars_thread(root, tmp_path):
    import shutil
    env_root = tmp_path / "one_thread"
    shutil.copytree(root / "ofi_cvd", env_root / "ofi_cvd")
    import os
    env = dict(os.environ, POLARS_MAX_THREADS="1")
    for r, e in ((root, None), (env_root, env)):
        subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "study", "--date", DAY,
                        "--symbol", SYM, "--data-dir", str(r)], check=True, env=e,
                       capture_output=True)
    rel = f"ofi_cvd/date={DAY}/symbol={SYM}/kind=study/part-00000.parquet"
    assert (root / rel).read_bytes() == (env_root / rel).read_bytes()


def test_cli_days_prints_the_aggregate(root, capsys, tmp_path):
    assert main(["study", "--symbol", SYM, "--date", DAY, "--data-dir", str(root)]) == 0
    capsys.readouterr()
    assert main(["study", "--symbol", SYM, "--days", "7", "--data-dir", str(root)]) == 0
    assert f"{DAY}/{DAY} (aggregate)" in capsys.readouterr().out
    assert main(["study", "--symbol", SYM, "--days", "7", "--data-dir", str(tmp_path)]) == 1
