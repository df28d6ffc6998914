"""LiveCvd's chunked path (staged trades through the numpy form, monitoring/chunked.py) against
its per-row path (``stage_rows=1``): the same window statistics, trade counts, event counters
and last z, on synthetic flows, property-tested cuts and a real recording (docs/monitoring.md
"CVD scale metrics and live signal events", docs/signals.md "Three forms, one engine")."""

from __future__ import annotations

import dataclasses
import gzip
import math
from itertools import count

import numpy as np
import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.monitoring import metrics
from ofi_cvd_harvest.monitoring.live_cvd import SIGNAL_TYPES, LiveCvd
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest_tests.paths import HFT

from .test_live_cvd import T0, feed, synthetic_trades

_ids = count()
CHUNKED = [0]           # trades the property test sent through chunks (checked below)


def events(sym: str) -> dict[str, float]:
    return {t: metrics.REGISTRY.get_sample_value("signal_events_total", {"symbol": sym, "type": t})
            or 0.0 for t in SIGNAL_TYPES}


def outputs(live: LiveCvd, sym: str) -> tuple:
    st = live.compute([sym])[sym]
    return st, events(sym), live._syms[sym].last_z


def assert_same_outputs(a: tuple, b: tuple) -> None:
    (sa, ea, za), (sb, eb, zb) = a, b
    assert (sa.rows, sa.trades) == (sb.rows, sb.trades)
    if sa.rows:
        assert sa.floor_hit_rate == sb.floor_hit_rate
        assert math.isclose(sa.scale_median, sb.scale_median, rel_tol=1e-9, abs_tol=0.0)
    else:
        assert math.isnan(sb.scale_median) and math.isnan(sb.floor_hit_rate)
    assert ea == eb
    assert (za is None) == (zb is None)
    if za is not None:
        assert math.isclose(za, zb, rel_tol=1e-9, abs_tol=0.0)


def run_both(s: Settings, rows: list[tuple], *, stage_rows: int, chunk_rows: int,
             reads: set[int] = frozenset(), report_sec: float = 300, bucket_sec: float = 10):
    """Per-row and chunked monitors over the same trades, compared at every read (a read
    flushes the staged trades: another cut) and at the end. Returns the chunked monitor."""
    ref_sym, sym = f"PERROW{next(_ids)}", f"CHUNKED{next(_ids)}"
    ref = LiveCvd(s, report_sec=report_sec, bucket_sec=bucket_sec, stage_rows=1)
    live = LiveCvd(s, report_sec=report_sec, bucket_sec=bucket_sec, stage_rows=stage_rows,
                   chunk_rows=chunk_rows)
    for i, (a, b, c, d) in enumerate(rows):
        ref.add(ref_sym, a, b, c, d)
        live.add(sym, a, b, c, d)
        if i in reads:
            assert_same_outputs(outputs(ref, ref_sym), outputs(live, sym))
    assert_same_outputs(outputs(ref, ref_sym), outputs(live, sym))
    assert live.errors == ref.errors == 0
    return live, sym


def event_settings(**kw) -> Settings:
    s = Settings()
    return s.replace(signals=dataclasses.replace(s.signals, **{
        "rearm_sec": 2.0, "cooldown_sec": 20.0, "divergence_window_sec": 60.0,
        "divergence_cooldown_sec": 60.0, **kw}))


def test_a_busy_symbol_across_midnight_with_late_trades_and_silences():
    """40 min at 40 trades/s crossing 00:00 UTC, late event times, two silences, every 13th trade
    without a price: nearly all of it through chunks, equal to the per-row path at 25 reads."""
    s = event_settings()
    ts, qty, ibm = synthetic_trades(2400, 40, seed=21, t0=T0 - 1200 * 1000)
    ts[::50] -= 1500
    ts[30_000:] += 20_000                      # silences longer than silence_sec
    ts[60_000:] += 600_000
    rng = np.random.default_rng(22)
    px = (100 + np.cumsum(rng.normal(0, 0.05, len(ts)))).tolist()
    px[::13] = [None] * len(px[::13])
    rows = list(zip(ts.tolist(), qty.tolist(), ibm.tolist(), px))
    reads = set(rng.integers(0, len(rows), 25).tolist())
    live, sym = run_both(s, rows, stage_rows=1024, chunk_rows=64, reads=reads)
    assert live.chunked_rows > 0.9 * len(rows)
    ev = events(sym)
    assert ev["cvd_extreme"] > 0 and ev["divergence_bullish"] > 0 and ev["divergence_bearish"] > 0


@pytest.mark.parametrize("mode", ["hybrid", "ewma", "mad"])
def test_every_scale_mode(mode):
    s = event_settings(scale_mode=mode)
    ts, qty, ibm = synthetic_trades(600, 30, seed=23)
    px = (100 + np.cumsum(np.random.default_rng(24).normal(0, 0.05, len(ts)))).tolist()
    live, _ = run_both(s, list(zip(ts.tolist(), qty.tolist(), ibm.tolist(), px)), stage_rows=700,
                       chunk_rows=32, reads={5000, 9000})
    assert live.chunked_rows > 0.9 * len(ts)


def test_level_mode_stays_per_row_and_equal():
    s = event_settings(z_mode="level")
    ts, qty, ibm = synthetic_trades(200, 20, seed=25)
    run_both(s, list(zip(ts.tolist(), qty.tolist(), ibm.tolist(), [None] * len(ts))),
             stage_rows=256, chunk_rows=16)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 0, 1, 7, 300, 2500, 6000]),
                          st.sampled_from([0.0, 0.001, 0.5, 1.0, 3.0, 40.0]), st.booleans(),
                          st.one_of(st.none(), st.sampled_from([99.0, 99.5, 100.0, 101.0]))),
                min_size=60, max_size=400),
       st.integers(1, 80), st.integers(2, 16), st.sets(st.integers(0, 400), max_size=5),
       st.integers(2, 30))
def test_any_cuts_equal_the_per_row_path(rows, stage_rows, chunk_rows, reads, floor_window):
    s = event_settings(floor_window=floor_window, warmup_rows=3, divergence_window_sec=3.0,
                       rearm_sec=0.5, cooldown_sec=1.0, divergence_cooldown_sec=2.0,
                       extreme_threshold=1.5, extreme_rearm=0.5)
    t = T0 - 30_000 + np.cumsum([r[0] for r in rows])
    trades = [(int(ti), q, m, p) for ti, (_, q, m, p) in zip(t, rows)]
    live, _ = run_both(s, trades, stage_rows=stage_rows, chunk_rows=chunk_rows, reads=reads,
                       report_sec=20, bucket_sec=2)
    CHUNKED[0] += live.chunked_rows


def test_the_property_test_did_chunk():
    assert CHUNKED[0] > 2000


@pytest.mark.skipif(not HFT.is_dir(), reason="realdata/ not available")
@pytest.mark.parametrize("sym", ["btcusdt", "ethusdt"])
def test_real_recording_chunked_equals_per_row(sym):
    """The recorded trades 2024-07-18 23:57 → 07-19 00:05 (midnight inside) with the default
    settings and staging."""
    rows = []
    for day in ("20240718", "20240719"):
        with gzip.open(HFT / f"{sym}_{day}.gz") as fh:
            for line in fh:
                if b'"e":"trade"' in line:
                    d = orjson.loads(line.split(b" ", 1)[1])["data"]
                    rows.append((d["E"], float(d["q"]), d["m"], float(d["p"])))
    assert len(rows) > 5_000
    rng = np.random.default_rng(26)
    live, _ = run_both(Settings(), rows, stage_rows=1024, chunk_rows=128,
                       reads=set(rng.integers(0, len(rows), 10).tolist()), report_sec=300)
    assert live.chunked_rows > 0.8 * len(rows)


def test_staged_trades_count_at_the_flush_not_before():
    """A new symbol goes direct until it has ``chunk_rows`` trades; then counters and
    statistics move when its stage fills, at compute/update_gauges and at flush: the delay
    docs/monitoring.md states."""
    s = event_settings()
    ts, qty, ibm = synthetic_trades(300, 10, seed=27)
    live = LiveCvd(s, stage_rows=500, recompute_sec=0, quiet_rows=1)   # direct mode on
    feed(live, "STAGEUSDT", ts[:255], qty[:255], ibm[:255])
    st = live._syms["STAGEUSDT"]
    assert st.trades == 255 and st.direct and not st.bp                  # direct: at once
    feed(live, "STAGEUSDT", ts[255:256], qty[255:256], ibm[255:256])
    assert st.trades == 256 and not st.direct                            # busy: stages now
    feed(live, "STAGEUSDT", ts[256:755], qty[256:755], ibm[256:755])
    assert st.trades == 256 and len(st.bp) == 499
    feed(live, "STAGEUSDT", ts[755:756], qty[755:756], ibm[755:756])      # the stage is full
    assert st.trades == 756 and not st.bp
    feed(live, "STAGEUSDT", ts[756:956], qty[756:956], ibm[756:956])
    assert st.trades == 756
    assert live.update_gauges()["STAGEUSDT"].trades == 956 and not st.bp
    assert not st.direct                                  # 956 trades since the start: busy
    feed(live, "STAGEUSDT", ts[956:], qty[956:], ibm[956:])
    live.flush()
    assert st.trades == len(ts)


def test_scale_bins_equal_the_per_row_binning_next_to_bin_edges():
    from ofi_cvd_harvest.monitoring.chunked import scale_bins
    from ofi_cvd_harvest.monitoring.live_cvd import scale_bin
    rng = np.random.default_rng(28)
    edges = 2.0 ** (np.arange(-40 * 128, 20 * 128) / 128)
    v = np.concatenate((edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf),
                        np.exp(rng.normal(0, 10, 20_000)), [1e-9, 1.0, 2.0, 0.5]))
    assert scale_bins(v).tolist() == [scale_bin(x) for x in v.tolist()]


def test_quiet_symbols_go_direct_busy_ones_stay_staged_and_both_equal_per_row():
    """At each gauge tick a symbol with fewer trades than a chunk since the last tick stops
    staging (its trades go through at once: no delay, no burst of per-row work at the tick);
    one that gets busy again stages."""
    s = event_settings()
    now = [0.0]
    ref = LiveCvd(s, stage_rows=1)
    live = LiveCvd(s, clock=lambda: now[0], recompute_sec=10, quiet_rows=1)   # direct mode on
    busy = synthetic_trades(120, 60, seed=29)
    quiet = synthetic_trades(120, 1, seed=30)
    rows = sorted([("TICKBUSY", *r) for r in zip(*(a.tolist() for a in busy))]
                  + [("TICKQUIET", *r) for r in zip(*(a.tolist() for a in quiet))],
                  key=lambda r: r[1])
    t0 = rows[0][1]
    for sym, a, b, c in rows:
        now[0] = (a - t0) / 1000.0
        live.update_gauges()
        live.add(sym, a, b, c, 100.0)
        ref.add("REF" + sym, a, b, c, 100.0)
    assert live._syms["TICKQUIET"].direct and not live._syms["TICKQUIET"].bp
    assert not live._syms["TICKBUSY"].direct
    assert live.chunked_rows > 0
    for sym in ("TICKBUSY", "TICKQUIET"):
        assert_same_outputs(outputs(ref, "REF" + sym), outputs(live, sym))
    late = synthetic_trades(30, 40, seed=31, t0=rows[-1][1])      # the quiet one gets busy
    for a, b, c in zip(*(x.tolist() for x in late)):
        now[0] = (a - t0) / 1000.0
        live.update_gauges()
        live.add("TICKQUIET", a, b, c, 100.0)
        ref.add("REFTICKQUIET", a, b, c, 100.0)
    assert not live._syms["TICKQUIET"].direct
    assert_same_outputs(outputs(ref, "REFTICKQUIET"), outputs(live, "TICKQUIET"))


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["QA", "QB", "QC"]),
                          st.sampled_from([0, 0, 1, 7, 300, 2500, 6000]),
                          st.sampled_from([0.0, 0.001, 0.5, 1.0, 3.0, 40.0]), st.booleans(),
                          st.one_of(st.none(), st.sampled_from([99.0, 99.5, 100.0, 101.0]))),
                min_size=30, max_size=400),
       st.integers(2, 40), st.sets(st.integers(0, 400), max_size=5), st.integers(2, 30),
       st.sampled_from([12, 10_000]))
def test_staged_quiet_symbols_equal_the_per_row_path(rows, quiet_rows, reads, floor_window,
                                                     chunk_rows):
    """``quiet_rows`` > 1: quiet symbols' trades wait in the stage and go through one symbol
    at a time (at ``quiet_rows``, at reads, at the end); interleaved symbols, reads anywhere:
    the same statistics, counts, events and last z as the per-row path (with a small
    ``chunk_rows``, quiet symbols also turn busy and chunk)."""
    s = event_settings(floor_window=floor_window, warmup_rows=3, divergence_window_sec=3.0,
                       rearm_sec=0.5, cooldown_sec=1.0, divergence_cooldown_sec=2.0,
                       extreme_threshold=1.5, extreme_rearm=0.5)
    tag = next(_ids)
    ref = LiveCvd(s, report_sec=20, bucket_sec=2, stage_rows=1)
    live = LiveCvd(s, report_sec=20, bucket_sec=2, quiet_rows=quiet_rows,
                   chunk_rows=chunk_rows)
    t = T0 - 30_000 + np.cumsum([r[1] for r in rows])
    for i, (ti, (sym, _, q, m, p)) in enumerate(zip(t.tolist(), rows)):
        ref.add(f"R{sym}{tag}", ti, q, m, p)
        live.add(f"L{sym}{tag}", ti, q, m, p)
        if i in reads:
            for name in ("QA", "QB", "QC"):
                if f"R{name}{tag}" in ref._syms:
                    assert_same_outputs(outputs(ref, f"R{name}{tag}"), outputs(live, f"L{name}{tag}"))
    for name in sorted({r[0] for r in rows}):
        assert_same_outputs(outputs(ref, f"R{name}{tag}"), outputs(live, f"L{name}{tag}"))
    assert live.errors == ref.errors == 0


def test_staged_quiet_symbol_moves_at_quiet_rows_and_at_the_tick():
    s = event_settings()
    ts, qty, ibm = synthetic_trades(100, 5, seed=32)
    now = [0.0]
    live = LiveCvd(s, quiet_rows=16, clock=lambda: now[0])
    feed(live, "QUIETUSDT", ts[:15], qty[:15], ibm[:15])
    st = live._syms["QUIETUSDT"]
    assert st.trades == 0 and len(st.bp) == 15 and st.direct           # staged, not yet run
    feed(live, "QUIETUSDT", ts[15:16], qty[15:16], ibm[15:16])
    assert st.trades == 16 and not st.bp                                # at quiet_rows
    feed(live, "QUIETUSDT", ts[16:20], qty[16:20], ibm[16:20])
    assert live.update_gauges()["QUIETUSDT"].trades == 20 and not st.bp and st.direct
