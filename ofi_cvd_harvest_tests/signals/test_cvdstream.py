"""Streaming CVD and event machines (cvdstream.py, eventstream.py) against the batch tables
(cvd.py, events.py) on the same rows: docs/signals.md "Two forms, one engine"."""

from __future__ import annotations

import numpy as np
import pytest
import polars as pl
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.cvd import cvd_frame
from ofi_cvd_harvest.signals.events import divergence_events, threshold_fires
from ofi_cvd_harvest.signals.eventstream import ThresholdMachine

from .helpers import D0, settings
from .streamparity import assert_cvd_parity, stream_cvd

STEPS = st.sampled_from([0, 0, 1, 7, 300, 1000, 5001, 20_000])
# event-time jitter: a trade whose E is earlier than the previous one (the engine clock holds)
JITTER = st.sampled_from([0, 0, 0, -3, -2000])


def trades_frame(start: int, steps: list[int], jitter: list[int], qty: list[float],
                 sells: list[bool], prices: list[float]) -> pl.DataFrame:
    e = (np.cumsum([start] + steps[1:]) + np.array(jitter)).tolist()
    return pl.DataFrame({"event_ts_ms": e, "qty": qty, "is_buyer_maker": sells,
                         "price": prices}).with_columns(pl.col("event_ts_ms").cum_max().alias("t"))


def assert_fires(df: pl.DataFrame, batch: pl.DataFrame, got: dict, sig) -> None:
    for direction, key in ((1, "fires_up"), (-1, "fires_down")):
        want = threshold_fires(batch["t"], batch["z_cvd"], sig.extreme_threshold, sig.extreme_rearm,
                               sig.rearm_sec, sig.cooldown_sec, direction).tolist()
        assert got[key] == want, key
    ev = batch.with_columns(pl.col("event_ts_ms").alias("ts_ms"), pl.lit("Q_L").alias("regime"))
    parts = divergence_events(ev, sig)
    if parts:
        bull, bear = parts
        t = batch["t"].to_list()
        assert [t[i] for i in got["fires_bull"]] == bull["ts_ms"].to_list()
        assert [t[i] for i in got["fires_bear"]] == bear["ts_ms"].to_list()


@hsettings(max_examples=120, deadline=None)
@given(steps=st.lists(STEPS, min_size=1, max_size=120), data=st.data(),
       z_mode=st.sampled_from(["delta", "level"]), mode=st.sampled_from(["hybrid", "ewma", "mad"]),
       before_midnight=st.integers(0, 60_000), floor_window=st.integers(2, 12),
       level_window=st.integers(2, 9), warmup=st.integers(0, 5),
       rearm=st.sampled_from([(0.0, 0.0), (1.0, 3.0), (5.0, 120.0)]))
def test_streaming_cvd_and_events_equal_the_batch(steps, data, z_mode, mode, before_midnight,
                                                   floor_window, level_window, warmup, rearm):
    n = len(steps)
    jitter = [0] + data.draw(st.lists(JITTER, min_size=n - 1, max_size=n - 1))
    qty = data.draw(st.lists(st.sampled_from([0.001, 0.5, 1.0, 3.0, 250.0]), min_size=n, max_size=n))
    sells = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    prices = data.draw(st.lists(st.sampled_from([99.0, 99.5, 100.0, 100.5, 101.0]), min_size=n, max_size=n))
    # the window starts before 00:00 of D0: two sessions (the level restarts at midnight)
    df = trades_frame(D0 - before_midnight, steps, jitter, qty, sells, prices)
    sig = settings(z_mode=z_mode, scale_mode=mode, floor_window=floor_window,
                   level_window=level_window, warmup_rows=warmup, extreme_threshold=1.5,
                   extreme_rearm=0.5, rearm_sec=rearm[0], cooldown_sec=rearm[1],
                   divergence_window_sec=2.0, divergence_cooldown_sec=rearm[1]).signals
    batch = cvd_frame(df, D0, sig)
    got = stream_cvd(df, sig)
    assert_cvd_parity(batch, got)
    assert_fires(df, batch, got, sig)


def test_level_equal_to_its_window_mean_is_zero_in_both_forms_within_operand_tolerance():
    """Found by hypothesis: the level equals its window mean, batch z_raw 0.0, streamed 1.1e-16
    (polars' rolling mean vs math.fsum, one ulp of the level apart). Both are right to 1e-9 of
    the operands; a pure relative comparison of a result near 0 is not a parity test."""
    df = trades_frame(D0 - 1, [0, 1, 0, 0, 0, 0, 0, 0], [0] * 8,
                      [0.001, 0.001, 1.0, 0.5, 3.0, 1.0, 3.0, 1.0],
                      [False, True, False, True, False, False, True, False], [99.0] * 8)
    sig = settings(z_mode="level", scale_mode="hybrid", floor_window=2, level_window=4,
                   warmup_rows=0, extreme_threshold=1.5, extreme_rearm=0.5, rearm_sec=0.0,
                   cooldown_sec=0.0, divergence_window_sec=2.0,
                   divergence_cooldown_sec=0.0).signals
    batch, got = cvd_frame(df, D0, sig), stream_cvd(df, sig)
    assert batch["z_raw"][7] == 0.0 and abs(got["z_raw"][7]) < 1e-15
    assert_cvd_parity(batch, got)
    got["z_raw"][7] = 1e-6   # a real difference still fails
    with pytest.raises(AssertionError):
        assert_cvd_parity(batch, got)


def test_level_mode_with_large_levels_and_small_moves():
    """A level far from zero moving in small steps: a running sum of squares would cancel."""
    rng = np.random.default_rng(3)
    n = 3000
    steps = rng.choice([0, 5, 200], size=n).tolist()
    df = trades_frame(D0 - 600_000, steps, [0] * n, (1e6 + rng.random(n)).tolist(),
                      [False] * (n // 2) + (rng.random(n - n // 2) < 0.5).tolist(), [100.0] * n)
    sig = settings(z_mode="level").signals
    assert_cvd_parity(cvd_frame(df, D0, sig), stream_cvd(df, sig))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 500, 2000, 6000]),
                          st.one_of(st.none(), st.sampled_from([0.0, 0.5, -0.9, 1.0, 1.5, -1.5, 2.0,
                                                                2.5, -2.5, 4.0]))),
                min_size=1, max_size=60),
       st.sampled_from([0.0, 1.0, 5.0]), st.sampled_from([0.0, 2.0, 10.0]), st.sampled_from([1, -1]))
def test_threshold_machine_equals_batch_fires(rows, rearm_sec, cooldown_sec, direction):
    t = np.cumsum([r[0] for r in rows]).tolist()
    z = [r[1] for r in rows]
    want = threshold_fires(pl.Series(t, dtype=pl.Int64), pl.Series(z, dtype=pl.Float64), 2.0, 1.0,
                           rearm_sec, cooldown_sec, direction).tolist()
    m = ThresholdMachine(2.0, 1.0, rearm_sec, cooldown_sec, direction)
    assert [i for i, (ti, zi) in enumerate(zip(t, z)) if m.update(ti, zi)] == want


def test_threshold_machine_rearms_exactly_at_rearm_sec_and_cooldown():
    """test_events.py's hand case: quiet from 121 s is 5 s long at 126 s -> re-armed, fires at 127 s."""
    s = 1000
    t = [0, 1 * s, 2 * s, 4 * s, 100 * s, 119 * s, 121 * s, 125 * s, 126 * s, 127 * s]
    z = [0, 2.5, 0.2, 0.1, 0.1, 2.5, 0.3, 0.3, 0.4, 2.4]
    m = ThresholdMachine(2.0, 1.0, 5.0, 120.0, 1)
    assert [i for i, (ti, zi) in enumerate(zip(t, z)) if m.update(ti, zi)] == [1, 9]
    m = ThresholdMachine(2.0, 1.0, 5.0, 125.0, 1)        # cool-down ends exactly at 126 s
    assert [i for i, (ti, zi) in enumerate(zip(t, z)) if m.update(ti, zi)] == [1, 9]
    m = ThresholdMachine(2.0, 1.0, 5.0, 125.001, 1)      # re-arms only on a quiet row
    assert [i for i, (ti, zi) in enumerate(zip(t, z)) if m.update(ti, zi)] == [1]
    m = ThresholdMachine(2.0, 1.0, 5.001, 120.0, 1)      # 1 ms short of re-arming
    assert [i for i, (ti, zi) in enumerate(zip(t, z)) if m.update(ti, zi)] == [1]


def test_divergence_is_ready_exactly_one_window_after_the_first_row():
    from ofi_cvd_harvest.signals.eventstream import DivergenceMachine
    sig = settings(divergence_window_sec=10.0).signals
    rows = [(0, 100.0, -1.0), (5_000, 100.0, -1.0), (10_000, 99.0, 1.0)]  # new low at exactly 10 s
    m = DivergenceMachine(sig)
    assert [m.update(*r) for r in rows] == [(False, False), (False, False), (True, False)]
    m = DivergenceMachine(settings(divergence_window_sec=10.001).signals)
    assert [m.update(*r) for r in rows][-1] == (False, False)
