"""The study on the real recordings (hftbacktest, 2024-07-18 23:57 → 07-19 00:05 UTC).

Eight minutes cannot show a signal (the intervals are wide; docs/research.md reports them);
what they do show is real midnight handling: the 18th's horizons past midnight read the 19th's
trades, and without them they are null and counted.
"""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from ofi_cvd_harvest.research.run import run_study
from ofi_cvd_harvest.research.study import HORIZONS_SEC
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.signals.derive import derive_all, write_kind
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest_tests.signals import realdata

pytestmark = pytest.mark.skipif(not realdata.available(), reason="realdata/ not present")
DAYS = ("2024-07-18", "2024-07-19")


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_study")
    st = Storage(root)
    trades, book = realdata.convert("BTCUSDT")
    sy.write_raw(st, "BTCUSDT", "agg_trade", trades)
    sy.write_raw(st, "BTCUSDT", "book", book)
    for day in DAYS:
        for kind, df in derive_all(st, Settings(), day, "BTCUSDT").items():
            write_kind(st, day, "BTCUSDT", kind, df)
    return root


def grid_row(df, measure, h):
    return df.filter((pl.col("measure") == measure) & (pl.col("signal") == "grid")
                     & (pl.col("horizon_sec") == h)).row(0, named=True)


def test_real_study_crosses_midnight_with_the_next_days_trades(real_root):
    res = run_study(Storage(real_root), DAYS[0], "BTCUSDT")
    assert res.has_next_day
    for h in HORIZONS_SEC:
        assert grid_row(res.table, "null_past_midnight", h)["value"] == 0
        assert grid_row(res.table, "null_forward_returns", h)["value"] == 0   # the 19th has 5 min
    ic = res.table.filter((pl.col("measure") == "ic") & (pl.col("regime") == "all"))
    assert ic["n"].min() > 100 and ic["value"].is_not_null().all()


def test_without_the_next_day_past_midnight_horizons_are_null_and_counted(real_root, tmp_path):
    shutil.copytree(real_root / "ofi_cvd" / f"date={DAYS[0]}", tmp_path / "ofi_cvd" / f"date={DAYS[0]}")
    res = run_study(Storage(tmp_path), DAYS[0], "BTCUSDT")
    assert not res.has_next_day
    for h in HORIZONS_SEC:
        pm = grid_row(res.table, "null_past_midnight", h)
        expect = min(h, pm["n"])                       # the last h seconds of the day
        assert expect - 1 <= pm["value"] <= expect, pm
        assert grid_row(res.table, "null_forward_returns", h)["value"] == pm["value"]
    assert layout.derived_file(DAYS[0], "BTCUSDT", "study") in res.path


def test_next_day_raw_trades_serve_when_its_derived_prices_are_absent(real_root, tmp_path):
    """The 19th not derived yet: its raw trades (deduplicated as the derivation does) are used."""
    shutil.copytree(real_root / "raw", tmp_path / "raw")
    shutil.copytree(real_root / "ofi_cvd" / f"date={DAYS[0]}", tmp_path / "ofi_cvd" / f"date={DAYS[0]}")
    res = run_study(Storage(tmp_path), DAYS[0], "BTCUSDT", write=False)
    assert res.has_next_day
    with_derived = run_study(Storage(real_root), DAYS[0], "BTCUSDT", write=False)
    assert res.table.equals(with_derived.table)
