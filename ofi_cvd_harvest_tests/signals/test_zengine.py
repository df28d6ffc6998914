"""Robust z engine (docs/signals.md) against hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.zengine import ZParams, ew_mean_prev, robust_z, warmup_mask

S = 1.4826
P = ZParams(scale_mode="hybrid", half_life_sec=2.0, fast_half_life_sec=1.0, fast_weight=0.5,
            mad_multiplier=1.0, winsor_limit=8.0, floor_window=2, warmup_rows=1,
            silence_sec=5.0, silence_warmup_rows=2)
T = pl.Series([0, 1000, 1000, 3000])
X = pl.Series([1.0, -2.0, 4.0, -8.0])
R2 = 2 ** -0.5  # weight of a 1 s old row at a 2 s half-life


def test_ew_mean_uses_rows_strictly_before_and_counts_tied_timestamps():
    fast = ew_mean_prev(T, X.abs(), 1.0).to_list()
    assert fast[0] is None
    assert fast[1] == pytest.approx(1.0)
    assert fast[2] == pytest.approx((0.5 * 1 + 2) / 1.5)            # row 1 has the same time as row 2
    assert fast[3] == pytest.approx((0.5 * 1 + 2 + 4) / 2.5)        # the tied row counts in full


def test_hybrid_hand_computed():
    z = robust_z(T, X, P)
    slow2 = (R2 * 1 + 2) / (R2 + 1)
    slow3 = (R2 * 1 + 2 + 4) / (R2 + 2)
    mix = [None, 1.0, 0.5 * (2.5 / 1.5) + 0.5 * slow2, 0.5 * 2.6 + 0.5 * slow3]
    floor = [None, 0.0, S * 1.5, S * 3.0]       # MAD of [1] / [1,-2] / [-2,4]
    assert z["mix"].to_list()[0] is None
    assert z["mix"].to_list()[1:] == pytest.approx(mix[1:])
    assert z["sigma_floor"].to_list()[1:] == pytest.approx(floor[1:])
    assert z["scale"].to_list() == pytest.approx([1e-9, 1.0, S * 1.5, S * 3.0])
    assert z["floor_used"].to_list() == [False, False, True, True]
    assert z["z_raw"].to_list()[0] is None                        # warm-up row
    assert z["z_raw"].to_list()[1:] == pytest.approx([-2.0, 4 / (S * 1.5), -8 / (S * 3.0)])
    assert z["z"].to_list()[1:] == pytest.approx(z["z_raw"].to_list()[1:])


def test_ewma_mode_uses_slow_mean_with_floor():
    z = robust_z(T, X, ZParams(**{**P.__dict__, "scale_mode": "ewma"}))
    slow2 = (R2 * 1 + 2) / (R2 + 1)
    slow3 = (R2 * 1 + 2 + 4) / (R2 + 2)
    assert z["mix"].to_list()[1:] == pytest.approx([1.0, slow2, slow3])
    assert z["scale"].to_list()[1:] == pytest.approx([1.0, max(slow2, S * 1.5), max(slow3, S * 3.0)])


def test_mad_mode_scale_is_the_floor_alone_and_winsorised():
    z = robust_z(T, X, ZParams(**{**P.__dict__, "scale_mode": "mad", "winsor_limit": 8.0}))
    assert z["scale"].to_list() == pytest.approx([1e-9, 1e-9, S * 1.5, S * 3.0])
    assert z["floor_used"].to_list() == [True] * 4
    assert z["z_raw"][1] == pytest.approx(-2e9)                  # scale collapsed to 1e-9 ...
    assert z["z"][1] == -8.0                                       # ... and the z is clipped at -L


def test_mad_multiplier_scales_the_floor():
    z = robust_z(T, X, ZParams(**{**P.__dict__, "mad_multiplier": 1.8}))
    assert z["sigma_floor"][3] == pytest.approx(1.8 * S * 3.0)


def test_warmup_first_rows_and_silence():
    t = [i * 100 for i in range(30)]
    t += [t[-1] + 5001, t[-1] + 5101, t[-1] + 5201]        # a silence of 5.001 s
    t += [t[-1] + 5000, t[-1] + 5100]                        # exactly 5 s: not a silence
    p = ZParams(warmup_rows=20, silence_sec=5.0, silence_warmup_rows=2, floor_window=5)
    m = warmup_mask(pl.Series(t), p).to_list()
    assert m[:20] == [True] * 20 and m[20:30] == [False] * 10
    assert m[30:33] == [True, True, False]
    assert m[33:] == [False, False]
    z = robust_z(pl.Series(t), pl.Series(np.sin(np.arange(len(t))) + 0.1), p)
    assert [v is None for v in z["z"].to_list()] == m


def test_all_zero_input_scale_floor():
    z = robust_z(pl.Series(range(0, 3000, 100)), pl.Series([0.0] * 30), ZParams(warmup_rows=0))
    assert z["scale"].to_list() == [1e-9] * 30
    assert z["z"].to_list() == [0.0] * 30


steps = st.lists(st.tuples(st.integers(0, 7000), st.floats(-1e3, 1e3, allow_nan=False)),
                 min_size=1, max_size=300)


@given(steps, st.sampled_from(["hybrid", "ewma", "mad"]), st.floats(0.5, 10))
@hsettings(max_examples=60, deadline=None)
def test_winsorised_z_bounded_and_no_look_ahead(rows, mode, limit):
    t = pl.Series(np.cumsum([d for d, _ in rows]))
    x = pl.Series([v for _, v in rows])
    p = ZParams(scale_mode=mode, winsor_limit=limit, floor_window=7, warmup_rows=3)
    full = robust_z(t, x, p)
    zs = full["z"].drop_nulls()
    assert (zs.abs() <= limit).all()
    k = len(rows) // 2 + 1
    prefix = robust_z(t[:k], x[:k], p)
    assert prefix.equals(full.head(k))          # appending future rows changes nothing before


def test_nonnegative_scale_and_floor_consistency():
    rng = np.random.default_rng(3)
    t = pl.Series(np.cumsum(rng.integers(0, 200, 2000)))
    x = pl.Series(rng.standard_t(2, 2000))
    z = robust_z(t, x, ZParams())
    assert (z["scale"] >= 1e-9).all()
    used = z.filter(pl.col("floor_used"))
    assert (used["scale"] == used["sigma_floor"]).all()
    assert math.isfinite(z["z"].drop_nulls().abs().max())
