"""Streaming z engine (signals/zstream.py) against the batch engine (zengine.py): the parity
contract of docs/signals.md "Two forms, one engine", plus its building blocks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.zengine import ZParams, robust_z
from ofi_cvd_harvest.signals.zstream import RollingMad, ZStream, mad_of_sorted

from .streamparity import assert_same

# time steps: same millisecond, short, just at / past the 5 s silence, long
STEPS = st.sampled_from([0, 0, 1, 3, 250, 1000, 4999, 5000, 5001, 30_000, 700_000])
VALUES = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 2.5, -0.001]),
                   st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


def stream(t: list[int], x: list[float], p: ZParams) -> dict[str, list]:
    eng = ZStream(p)
    out: dict[str, list] = {k: [] for k in ("z_raw", "z", "scale", "sigma_floor", "floor_used",
                                            "fast", "slow", "mix")}
    for ti, xi in zip(t, x):
        row = eng.update(ti, xi)
        for k, v in zip(("z_raw", "z", "scale", "sigma_floor", "floor_used"), row):
            out[k].append(v)
        out["fast"].append(eng.fast)
        out["slow"].append(eng.slow)
        out["mix"].append(eng.mix)
    return out


def assert_engine_parity(t: list[int], x: list[float], p: ZParams) -> None:
    batch = robust_z(pl.Series(t, dtype=pl.Int64), pl.Series(x, dtype=pl.Float64), p)
    got = stream(t, x, p)
    for col in got:
        assert_same(col, batch[col].to_list(), got[col])


@hsettings(max_examples=150, deadline=None)
@given(steps=st.lists(STEPS, min_size=1, max_size=80), data=st.data(),
       mode=st.sampled_from(["hybrid", "ewma", "mad"]),
       floor_window=st.integers(2, 9), warmup=st.integers(0, 4), silence_rows=st.integers(0, 3),
       half_lives=st.sampled_from([(600.0, 60.0), (2.0, 1.0), (0.5, 30.0)]),
       weight=st.sampled_from([0.0, 0.2, 1.0]), limit=st.sampled_from([0.5, 8.0]))
def test_streaming_engine_equals_batch_engine(steps, data, mode, floor_window, warmup, silence_rows,
                                              half_lives, weight, limit):
    t = np.cumsum([1_700_000_000_000] + steps[1:]).tolist()
    x = data.draw(st.lists(VALUES, min_size=len(t), max_size=len(t)))
    p = ZParams(scale_mode=mode, half_life_sec=half_lives[0], fast_half_life_sec=half_lives[1],
                fast_weight=weight, winsor_limit=limit, floor_window=floor_window,
                warmup_rows=warmup, silence_warmup_rows=silence_rows)
    assert_engine_parity(t, x, p)


@pytest.mark.parametrize("mode", ["hybrid", "ewma", "mad"])
def test_long_heavy_tailed_series_default_params(mode):
    """5,000 rows (the 200-row floor window full and sliding), bursts in one millisecond."""
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.choice([0, 1, 40, 900, 6000], size=5000, p=[.35, .25, .25, .13, .02]))
    x = rng.standard_t(2, size=5000) * (rng.random(5000) < 0.9)
    assert_engine_parity(t.tolist(), x.tolist(), ZParams(scale_mode=mode))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 3).map(float),
                          st.floats(-1e9, 1e9, allow_nan=False)), min_size=1, max_size=40))
def test_mad_of_sorted_is_numpy_median_of_deviations_bit_for_bit(v):
    a = np.array(v)
    want = float(np.median(np.abs(a - np.median(a))))
    assert mad_of_sorted(sorted(v)) == want


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=30), st.integers(-2, 32))
def test_mad_search_from_any_guess_gives_the_same_bits(v, guess):
    """The galloping search starts from the previous row's answer; any start gives the same."""
    from ofi_cvd_harvest.signals.zstream import _mad
    v = sorted(v)
    assert _mad(v, guess)[0] == mad_of_sorted(v)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(-4, 4).map(float), st.floats(-1e3, 1e3, allow_nan=False)),
                min_size=1, max_size=160), st.integers(7, 41))
def test_inline_mad_of_the_update_is_numpy_bit_for_bit_on_wide_windows(x, w):
    """``ZStream.update`` computes the MAD inline, from the previous row's run start (the fast
    path needs windows wider than the hypothesis engine test's): sigma_floor is
    k·1.4826·``np.median(|v − np.median(v)|)`` of the previous ``w`` values, bit for bit, odd and
    even widths, ties included."""
    p = ZParams(floor_window=w)
    eng = ZStream(p)
    kc = p.mad_multiplier * 1.4826
    for i, xi in enumerate(x):
        floor = eng.update(1_700_000_000_000 + i, xi)[3]
        if i == 0:
            assert floor is None
        else:
            v = np.array(x[max(0, i - w):i])
            assert floor == kc * float(np.median(np.abs(v - np.median(v))))


def test_rolling_mad_forgets_the_oldest_value():
    r = RollingMad(3)
    assert r.mad() is None
    for v in (100.0, 1.0, 2.0, 4.0):
        r.push(v)
    assert sorted(r.srt) == [1.0, 2.0, 4.0] and r.mad() == 1.0   # 100 left the window


def test_hand_computed_like_the_batch_engine():
    """The batch engine's hand-computed case (test_zengine.py), streamed."""
    p = ZParams(scale_mode="hybrid", half_life_sec=2.0, fast_half_life_sec=1.0, fast_weight=0.5,
                mad_multiplier=1.0, floor_window=2, warmup_rows=1)
    got = stream([0, 1000, 1000, 3000], [1.0, -2.0, 4.0, -8.0], p)
    s = 1.4826
    assert got["z_raw"][0] is None and got["scale"] == pytest.approx([1e-9, 1.0, s * 1.5, s * 3.0])
    assert got["fast"][2] == pytest.approx((0.5 * 1 + 2) / 1.5)   # the tied row counts in full
    assert got["floor_used"] == [False, False, True, True]


def test_stream_modules_import_neither_polars_nor_numpy():
    code = ("import sys; import ofi_cvd_harvest.signals.zstream, ofi_cvd_harvest.signals.cvdstream, "
            "ofi_cvd_harvest.signals.eventstream; "
            "print(sorted(m for m in ('polars', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_scale_mode_is_refused():
    with pytest.raises(ValueError, match="SCALE_MODE"):
        ZStream(ZParams(scale_mode="median"))
