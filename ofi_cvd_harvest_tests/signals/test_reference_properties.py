"""Vectorised implementations against straightforward sequential references (hypothesis)."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.events import threshold_fires
from ofi_cvd_harvest.signals.ofi import book_from_raw, ofi_values

from .helpers import D0, book_table


def seq_machine(t, z, thr, rearm, rearm_ms, cooldown_ms, direction):
    """The event state machine of docs/signals.md, row by row: fire when past the threshold while armed;
    re-arm once |z| < rearm has held for rearm_ms (from the first row of the below-run) and
    cooldown_ms have passed since the last fire; null z changes nothing."""
    armed, last_fire, below_since, out = True, None, None, []
    for ti, v in zip(t, z):
        fire = False
        if v is not None:
            if abs(v) < rearm:
                below_since = ti if below_since is None else below_since
                if (not armed and ti - below_since >= rearm_ms
                        and ti - last_fire >= cooldown_ms):
                    armed = True
            else:
                below_since = None
                if ((v > thr) if direction > 0 else (v < -thr)) and armed:
                    fire, armed, last_fire = True, False, ti
        out.append(fire)
    return out


@given(st.lists(st.tuples(st.integers(0, 1500), st.one_of(st.none(), st.floats(-5, 5))), max_size=200),
       st.sampled_from([1, -1]), st.sampled_from([0, 500, 2000]), st.sampled_from([0, 1000, 5000]))
@hsettings(max_examples=300, deadline=None)
def test_threshold_machine_matches_sequential_reference(rows, direction, rearm_ms, cooldown_ms):
    t, z, acc = [], [], 0
    for dt_, v in rows:
        acc += dt_
        t.append(acc); z.append(v)
    got = threshold_fires(pl.Series(t, dtype=pl.Int64), pl.Series(z, dtype=pl.Float64), 2.0, 1.0,
                          rearm_ms / 1000, cooldown_ms / 1000, direction).tolist()
    want = seq_machine(t, z, 2.0, 1.0, rearm_ms, cooldown_ms, direction)
    assert got == [i for i, f in enumerate(want) if f]


def seq_ofi(rows, weights):
    out = []
    for n, r in enumerate(rows):
        if n == 0 or r.get("gap"):
            out.append(0.0)
            continue
        prev, total = rows[n - 1], 0.0
        for m, w in enumerate(weights):
            def lvl(book, side):
                lv = book[side]
                if m < len(lv):
                    return lv[m]
                return (-math.inf if side == "bids" else math.inf), 0.0
            pb, qb = lvl(r, "bids"); pb0, qb0 = lvl(prev, "bids")
            pa, qa = lvl(r, "asks"); pa0, qa0 = lvl(prev, "asks")
            e = (qb if pb >= pb0 else 0) - (qb0 if pb <= pb0 else 0) \
                - (qa if pa <= pa0 else 0) + (qa0 if pa >= pa0 else 0)
            total += w * e
        out.append(total)
    return out


level = st.tuples(st.integers(0, 4), st.floats(0.0, 10.0))


@given(st.lists(st.tuples(st.lists(level, max_size=3), st.lists(level, max_size=3), st.booleans()),
                min_size=1, max_size=40))
@hsettings(max_examples=150, deadline=None)
def test_ofi_matches_per_row_formula(books):
    rows = []
    for i, (b, a, gap) in enumerate(books):
        bids = sorted({100 - p * 0.5: q for p, q in b}.items(), reverse=True)   # best first
        asks = sorted({101 + p * 0.5: q for p, q in a}.items())
        rows.append({"E": D0 + 100 * i, "u": 10 * (i + 1), "bids": bids, "asks": asks,
                     "gap": gap and i % 3 == 0})
    weights = (0.5, 0.3, 0.2)
    got = ofi_values(book_from_raw(pl.from_arrow(book_table(rows)), 3, D0, D0 + 86_400_000), weights)
    assert got["ofi_value"].to_list() == pytest.approx(seq_ofi(rows, weights))


def seq_divergence(t, price, delta, window_ms, cooldown_ms):
    cum, bull, bear = [], [], []
    c = 0.0
    for d in delta:
        c += d
        cum.append(c)
    prev_b = prev_s = False
    last_b = last_s = None
    for i in range(len(t)):
        js = [j for j in range(len(t)) if t[i] - window_ms <= t[j] < t[i]]
        ready = t[i] >= t[0] + window_ms and js
        b = bool(ready) and price[i] < min(price[j] for j in js) and cum[i] >= min(cum[j] for j in js)
        s = bool(ready) and price[i] > max(price[j] for j in js) and cum[i] <= max(cum[j] for j in js)
        fb = b and not prev_b and (last_b is None or t[i] - last_b >= cooldown_ms)
        fs = s and not prev_s and (last_s is None or t[i] - last_s >= cooldown_ms)
        last_b = t[i] if fb else last_b
        last_s = t[i] if fs else last_s
        bull.append(fb)
        bear.append(fs)
        prev_b, prev_s = b, s
    return bull, bear


@given(st.lists(st.tuples(st.integers(0, 400), st.integers(-3, 3), st.floats(-5, 5)),
                min_size=1, max_size=80), st.sampled_from([0, 1500, 4000]))
@hsettings(max_examples=150, deadline=None)
def test_divergence_matches_definition(steps, cooldown_ms):
    from ofi_cvd_harvest.signals.events import divergence_events
    from .helpers import settings

    t, p, d = [], [], []
    tt, pp = 0, 100.0
    for dt_, dp, dd in steps:
        tt += dt_ * 10
        pp += dp * 0.5
        t.append(tt); p.append(pp); d.append(dd)
    sig = settings(divergence_window_sec=1.0,                # 1000 ms window
                   divergence_cooldown_sec=cooldown_ms / 1000).signals
    df = pl.DataFrame({"ts_ms": t, "t": t, "price": p, "delta": d, "regime": ["x"] * len(t)})
    bull, bear = divergence_events(df, sig)
    rb, rs = seq_divergence(t, p, d, 1000, cooldown_ms)
    assert bull["ts_ms"].to_list() == [t[i] for i, v in enumerate(rb) if v]
    assert bear["ts_ms"].to_list() == [t[i] for i, v in enumerate(rs) if v]


def naive_ew(t, v, h_ms, i):
    """Σ_j≤i 2^(−(t_i−t_j)/h)·v_j / Σ_j≤i 2^(−(t_i−t_j)/h)."""
    w = [2 ** (-(t[i] - t[j]) / h_ms) for j in range(i + 1)]
    return sum(wj * v[j] for j, wj in enumerate(w)) / sum(w)


@given(st.lists(st.tuples(st.integers(0, 3000), st.floats(0, 100)), min_size=2, max_size=60))
@hsettings(max_examples=100, deadline=None)
def test_ew_mean_prev_is_the_spec_weighted_mean(rows):
    from ofi_cvd_harvest.signals.zengine import ew_mean_prev

    t, v, acc = [], [], 0
    for dt_, x in rows:
        acc += dt_
        t.append(acc); v.append(x)
    got = ew_mean_prev(pl.Series(t), pl.Series(v), 1.5).to_list()
    assert got[0] is None
    for i in range(1, len(t)):
        assert got[i] == pytest.approx(naive_ew(t, v, 1500, i - 1), rel=1e-9, abs=1e-9)


@given(st.lists(st.tuples(st.integers(0, 4000), st.integers(-2, 2)), min_size=2, max_size=80))
@hsettings(max_examples=60, deadline=None)
def test_regime_matches_definition(rows):
    from ofi_cvd_harvest.signals.regime import regime_timeline

    t, p, acc, px = [], [], 0, 100.0
    for dt_, dp in rows:
        acc += dt_
        px += dp * 0.1
        t.append(acc); p.append(px)
    win, hl = 5_000, 20.0                                  # 5 s window, 20 s half-life
    tl = regime_timeline(pl.Series(t), pl.Series(p), 0, t[-1] + 3000, win / 1000, hl)
    grid = tl["ts_ms"].to_list()
    assert grid[0] == -(-(t[0] + win) // 1000) * 1000
    rate, vol = [], []
    for g in grid:
        inside = [k for k in range(len(t)) if g - win < t[k] <= g]
        rate.append(len(inside) / (win / 1000))
        rets = [abs(math.log(p[k] / p[k - 1])) for k in inside if k >= 1]
        vol.append(sum(rets) / len(rets) if rets else 0.0)
    for i, g in enumerate(grid):
        r_ew = naive_ew(grid, rate, hl * 1000, i)
        v_ew = naive_ew(grid, vol, hl * 1000, i)
        if abs(rate[i] - r_ew) < 1e-9 or abs(vol[i] - v_ew) < 1e-12:
            continue                                       # a float tie: either label is right
        want = ("A" if rate[i] >= r_ew else "Q") + ("_H" if vol[i] >= v_ew else "_L")
        assert tl["regime"][i] == want
