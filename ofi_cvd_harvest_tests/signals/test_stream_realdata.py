"""Streaming CVD engine and event machines on the real Binance recordings (2024-07-18 23:57 →
07-19 00:05): equal to the derived tables row for row, across midnight, in every mode."""

from __future__ import annotations

import polars as pl
import pytest

from ofi_cvd_harvest.settings import Settings, SignalSettings
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.signals.cvd import cvd_frame
from ofi_cvd_harvest.signals.derive import Window, derive_all
from ofi_cvd_harvest.signals.eventstream import ThresholdMachine
from ofi_cvd_harvest.signals.ofi import book_from_raw
from ofi_cvd_harvest.signals.ofistream import FusionStream, OfiStream
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


def stream_book(book: pl.DataFrame, cvd_t: list, cvd_z: list, s: Settings) -> dict[str, list]:
    """OFI, fusion and their event machines over the window's book rows, the CVD rows merged
    in by engine time (a trade before a book row of the same millisecond)."""
    sig = s.signals
    ofi, fus = OfiStream(sig), FusionStream(sig)
    lv = range(sig.ofi_levels)
    machines = {("ofi_extreme", d): ThresholdMachine(sig.extreme_threshold, sig.extreme_rearm,
                                                     sig.rearm_sec, sig.cooldown_sec, d) for d in (1, -1)}
    machines[("fusion_long", 1)] = ThresholdMachine(sig.fusion_threshold, sig.fusion_rearm,
                                                    sig.rearm_sec, sig.cooldown_sec, 1)
    machines[("fusion_short", -1)] = ThresholdMachine(sig.fusion_threshold, sig.fusion_rearm,
                                                      sig.rearm_sec, sig.cooldown_sec, -1)
    out: dict[str, list] = {k: [] for k in ("ts_ms", "ofi_value", "ofi_z", "scale", "z_cvd",
                                            "score", "score_z")}
    fires: dict[str, list] = {}
    j = 0
    cols = {c: book[c].to_list() for c in book.columns}
    for i, t in enumerate(cols["t"]):
        while j < len(cvd_t) and cvd_t[j] <= t:
            fus.cvd(cvd_t[j], cvd_z[j])
            j += 1
        value, _, oz, scale = ofi.update(t, [cols[f"bp{m}"][i] for m in lv], [cols[f"bq{m}"][i] for m in lv],
                                         [cols[f"ap{m}"][i] for m in lv], [cols[f"aq{m}"][i] for m in lv],
                                         cols["gap"][i])
        zc, score, sz = fus.update(t, oz)
        for k, v in zip(out, (cols["ts_ms"][i], value, oz, scale, zc, score, sz)):
            out[k].append(v)
        for (etype, d), m in machines.items():
            if m.update(t, oz if etype == "ofi_extreme" else sz):
                fires.setdefault(etype, []).append(t)
    out["fires"] = fires
    return out


@pytest.mark.parametrize("sym", ["BTCUSDT", "ETHUSDT"])
def test_stream_ofi_fusion_and_all_events_equal_derived_tables(raw, sym, tmp_path):
    s = Settings()
    st = Storage(tmp_path)
    sy.write_raw(st, sym, "agg_trade", raw[sym][0])
    sy.write_raw(st, sym, "book", raw[sym][1])
    tables = derive_all(st, s, DAY, sym)
    w = Window.of(DAY, s)
    trades = window_trades(raw[sym][0], s)
    cvd = stream_cvd(trades, s.signals)
    book = book_from_raw(pl.from_arrow(raw[sym][1]), s.signals.ofi_levels, w.z_start, w.day_end)
    got = stream_book(book, cvd["t"], cvd["z_cvd"], s)
    day = [i for i, ts in enumerate(got["ts_ms"]) if ts >= w.day_start]
    assert 0 < day[0] and len(day) == len(tables["ofi"]) == len(tables["fusion"]) > 2900
    for col in ("ofi_value", "ofi_z", "scale"):
        assert_same(col, tables["ofi"][col].to_list(), [got[col][i] for i in day])
    for col in ("z_cvd", "score", "score_z"):
        assert_same(col, tables["fusion"][col].to_list(), [got[col][i] for i in day])
    ev = tables["events"]
    t = cvd["t"]
    fired = {"cvd_extreme": [t[i] for k in ("fires_up", "fires_down") for i in cvd[k]],
             "divergence_bullish": [t[i] for i in cvd["fires_bull"]],
             "divergence_bearish": [t[i] for i in cvd["fires_bear"]], **got["fires"]}
    assert set(ev["event_type"]) & set(fired)           # something fired on the date
    assert len([k for k, v in fired.items() if v]) >= 3  # and the window ran several machines
    for etype, times in fired.items():
        want = sorted(ev.filter(pl.col("event_type") == etype)["ts_ms"].to_list())
        assert sorted(x for x in times if x >= w.day_start) == want, etype


@pytest.mark.parametrize("z_mode", ["delta", "level"])
@pytest.mark.parametrize("scale_mode", ["hybrid", "ewma", "mad"])
def test_stream_equals_cvd_frame_in_every_mode(raw, z_mode, scale_mode):
    s = Settings(signals=SignalSettings(z_mode=z_mode, scale_mode=scale_mode))
    trades = window_trades(raw["BTCUSDT"][0], s)
    d0 = Window.of(DAY, s).day_start
    assert_cvd_parity(cvd_frame(trades, d0, s.signals), stream_cvd(trades, s.signals))
