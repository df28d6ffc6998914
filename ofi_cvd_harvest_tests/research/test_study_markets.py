"""A study finds a signal that is there and none where there is none (docs/research.md).

Planted market (book imbalance leads trade direction and price by 10 s): the IC of ``ofi_z``
at 10 s is clearly positive and ``ofi_extreme`` events are followed by returns their way.
Null market (trade prices an independent random walk): every IC is within its interval of
zero, which holds only because the t-statistics treat overlapping horizons honestly.
Seeds were fixed before looking at the results.
"""

from __future__ import annotations

import polars as pl
import pytest

from ofi_cvd_harvest.research.run import run_study
from ofi_cvd_harvest.research.study import HORIZONS_SEC, IC_SIGNALS
from ofi_cvd_harvest.sim.market import StudyMode

from .simstudy import DAY, simulated_partition

SYM = "BTCUSDT"


def fig(df: pl.DataFrame, **eq) -> dict:
    sel = df
    for k, v in eq.items():
        sel = sel.filter(pl.col(k) == v)
    assert len(sel) == 1, eq
    return sel.row(0, named=True)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    st = simulated_partition(tmp_path_factory.mktemp("planted"), SYM, 30, StudyMode(planted_sec=10))
    return run_study(st, DAY, SYM)


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    st = simulated_partition(tmp_path_factory.mktemp("null"), SYM, 60, StudyMode(null_market=True))
    return run_study(st, DAY, SYM)


def test_planted_signal_is_found(planted):
    df = planted.table
    ic = fig(df, measure="ic", signal="ofi_z", regime="all", horizon_sec=10)
    assert ic["t_stat"] > 3 and ic["ci_low"] > 0, ic
    up = fig(df, measure="event_mean_bps", signal="ofi_extreme", direction="up", regime="all", horizon_sec=10)
    down = fig(df, measure="event_mean_bps", signal="ofi_extreme", direction="down", regime="all", horizon_sec=10)
    both = fig(df, measure="event_mean_bps", signal="ofi_extreme", direction="both", regime="all", horizon_sec=10)
    assert up["value"] > 0 > down["value"] and both["value"] > 0, (up, down, both)
    assert fig(df, measure="hit_rate", signal="ofi_extreme", direction="both", regime="all",
               horizon_sec=10)["value"] > 0.5


def test_null_market_has_no_signal(null):
    df = null.table
    for col, _ in IC_SIGNALS:
        for h in HORIZONS_SEC:
            ic = fig(df, measure="ic", signal=col, regime="all", horizon_sec=h)
            assert abs(ic["t_stat"]) < 3 and ic["ci_low"] < 0 < ic["ci_high"], ic
            assert ic["n"] > 3000


def test_nulls_are_counted_per_horizon(null):
    """The capture ran 61 minutes into the day: the last h seconds of the grid have no
    forward price, counted (not past midnight)."""
    df = null.table
    for h in HORIZONS_SEC:
        r = fig(df, measure="null_forward_returns", signal="grid", horizon_sec=h)
        pm = fig(df, measure="null_past_midnight", signal="grid", horizon_sec=h)
        assert h - 1 <= r["value"] <= h + 1 and pm["value"] == 0
        ic = fig(df, measure="ic", signal="ofi_z", regime="all", horizon_sec=h)
        assert ic["n"] <= r["n"] - r["value"]


def test_regimes_partition_the_grid(planted):
    df = planted.table.filter((pl.col("measure") == "ic") & (pl.col("signal") == "ofi_z")
                              & (pl.col("horizon_sec") == 10))
    total = df.filter(pl.col("regime") == "all")["n"][0]
    assert df.filter(pl.col("regime") != "all")["n"].sum() == total
    assert df.height > 1


def test_study_table_is_a_function_of_its_inputs(planted, tmp_path):
    """Same inputs, same bytes: recomputing and rewriting gives an identical file."""
    import pyarrow.parquet as pq
    from ofi_cvd_harvest.research.io import write_study
    from ofi_cvd_harvest.storage.fs import Storage
    st = Storage(tmp_path)
    a = write_study(st, DAY, SYM, planted.table)
    first = open(a, "rb").read()
    again = run_study(Storage(planted.path.split("/ofi_cvd/")[0]), DAY, SYM, write=False)
    assert again.table.equals(planted.table)
    write_study(st, DAY, SYM, again.table)
    assert open(a, "rb").read() == first
    assert pq.read_schema(planted.path).names[:3] == ["date", "symbol", "measure"]
