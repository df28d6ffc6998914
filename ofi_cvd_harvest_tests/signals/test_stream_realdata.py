"""Streaming CVD engine and event machines on the real Binance recordings (2024-07-18 23:57 →
07-19 00:05): equal to the derived tables row for row, across midnight, in every mode."""

from __future__ import annotations

import polars as pl
import pytest

from ofi_cvd_harvest.settings import Settings, SignalSettings
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.signals.cvd import cvd_frame
from ofi_cvd_harvest.signals.derive import Window, derive_all
from ofi_cvd_harvest.signals.prices import trades_from_raw
from ofi_cvd_harvest.storage.fs import Storage

from . import realdata
from .streamparity import assert_cvd_parity, assert_same, stream_cvd

pytestmark = pytest.mark.skipif(not realdata.available(), reason="realdata/ not present")
DAY = "2024-07-19"


@pytest.fixture(scope="module")
def raw():
    return {sym: realdata.convert(sym) for sym in ("BTCUSDT", "ETHUSDT")}


def window_trades(trades_raw, settings: Settings) -> pl.DataFrame:
    """The trades of the z engines' window, exactly as derive.compute selects them."""
    w = Window.of(DAY, settings)
    return trades_from_raw(pl.from_arrow(trades_raw), w.z_start, w.day_end)


@pytest.mark.parametrize("sym", ["BTCUSDT", "ETHUSDT"])
def test_stream_equals_derived_tables(raw, sym, tmp_path):
    """Default settings: the cvd table (date rows, warmed up before midnight) and the cvd
    events of the events table, from the trades of the window streamed once."""
    s = Settings()
    st = Storage(tmp_path)
    sy.write_raw(st, sym, "agg_trade", raw[sym][0])
    sy.write_raw(st, sym, "book", raw[sym][1])
    tables = derive_all(st, s, DAY, sym)
    trades = window_trades(raw[sym][0], s)
    got = stream_cvd(trades, s.signals)
    d0 = Window.of(DAY, s).day_start
    day = [i for i, e in enumerate(trades["event_ts_ms"].to_list()) if e >= d0]
    assert 0 < day[0] and len(day) == len(tables["cvd"]) > 9000     # warm-up rows exist
    cvd = tables["cvd"]
    for col, bcol in (("cvd", "cvd"), ("z_raw", "z_raw"), ("z_cvd", "z_cvd"), ("scale", "scale"),
                      ("sigma_floor", "sigma_floor"), ("floor_used", "floor_used"), ("delta", "delta")):
        assert_same(col, cvd[bcol].to_list(), [got[col][i] for i in day])
    ev = tables["events"]
    t = got["t"]
    for etype, keys in (("cvd_extreme", ("fires_up", "fires_down")),
                        ("divergence_bullish", ("fires_bull",)), ("divergence_bearish", ("fires_bear",))):
        fired = sorted(t[i] for k in keys for i in got[k] if t[i] >= d0)
        assert fired == sorted(ev.filter(pl.col("event_type") == etype)["ts_ms"].to_list()), etype
    assert any(got[k] for k in ("fires_up", "fires_down"))             # something was compared


@pytest.mark.parametrize("z_mode", ["delta", "level"])
@pytest.mark.parametrize("scale_mode", ["hybrid", "ewma", "mad"])
def test_stream_equals_cvd_frame_in_every_mode(raw, z_mode, scale_mode):
    s = Settings(signals=SignalSettings(z_mode=z_mode, scale_mode=scale_mode))
    trades = window_trades(raw["BTCUSDT"][0], s)
    d0 = Window.of(DAY, s).day_start
    assert_cvd_parity(cvd_frame(trades, d0, s.signals), stream_cvd(trades, s.signals))
