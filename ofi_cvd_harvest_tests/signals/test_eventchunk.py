"""The chunked event machines (signals/eventchunk.py) against the per-row ones: cut into chunks
anywhere, they fire on exactly the same rows and leave the same state (docs/signals.md "Three
forms, one engine")."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.eventchunk import _range_extreme, divergence_chunk, threshold_chunk
from ofi_cvd_harvest.signals.eventstream import DivergenceMachine, ThresholdMachine

from .helpers import settings

Z = st.one_of(st.none(), st.sampled_from([0.0, 0.5, -0.9, 1.0, 1.5, -1.5, 2.0, 2.5, -2.5, 4.0]))


def pieces(n: int, cuts: list[int]):
    bounds = sorted({0, n, *[c for c in cuts if 0 < c < n]})
    return zip(bounds[:-1], bounds[1:])


def threshold_mixed(m: ThresholdMachine, t: list[int], z: list, cuts: list[int],
                    every: int) -> list[int]:
    """Pieces alternate: chunk, per-row, chunk, ... (``every``: which parity is chunked)."""
    fires = []
    for j, (a, b) in enumerate(pieces(len(t), cuts)):
        if j % 2 == every:
            idx = [i for i in range(a, b) if z[i] is not None]
            ta = np.array([t[i] for i in idx], dtype=np.int64)
            za = np.array([z[i] for i in idx], dtype=np.float64)
            fires += [idx[k] for k in threshold_chunk(m, ta, za)]
        else:
            fires += [i for i in range(a, b) if m.update(t[i], z[i])]
    return fires


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 500, 2000, 6000]), Z), min_size=1, max_size=80),
       st.sampled_from([0.0, 1.0, 5.0]), st.sampled_from([0.0, 2.0, 10.0]),
       st.sampled_from([1, -1]), st.lists(st.integers(0, 80), max_size=8), st.integers(0, 1))
def test_threshold_chunks_fire_on_the_same_rows(rows, rearm_sec, cooldown_sec, direction, cuts,
                                                every):
    t = np.cumsum([r[0] for r in rows]).tolist()
    z = [r[1] for r in rows]
    ref = ThresholdMachine(2.0, 1.0, rearm_sec, cooldown_sec, direction)
    want = [i for i, (ti, zi) in enumerate(zip(t, z)) if ref.update(ti, zi)]
    m = ThresholdMachine(2.0, 1.0, rearm_sec, cooldown_sec, direction)
    assert threshold_mixed(m, t, z, cuts, every) == want
    assert (m.armed, m.run_start, m.last_fire) == (ref.armed, ref.run_start, ref.last_fire)


def divergence_mixed(m: DivergenceMachine, rows: list, cuts: list[int], every: int) -> list:
    fires = []
    cache: dict = {}
    for j, (a, b) in enumerate(pieces(len(rows), cuts)):
        if j % 2 == every:
            t, p, d = (np.array(c) for c in zip(*rows[a:b]))
            bull, bear = divergence_chunk(m, t.astype(np.int64), p.astype(float), d.astype(float),
                                          cache if every else None)
            fires += sorted([(a + k, "bull") for k in bull] + [(a + k, "bear") for k in bear])
        else:
            for i in range(a, b):
                bull, bear = m.update(*rows[i])
                fires += [(i, "bull")] * bull + [(i, "bear")] * bear
    return fires


def live_entries(m: DivergenceMachine) -> tuple:
    """The state that can still matter (the per-row machine drops stale entries lazily)."""
    lo = m.cur_t - m.window_ms
    return (tuple(tuple(e for e in q if e[0] >= lo) for q in (m.p_lo, m.p_hi, m.c_lo, m.c_hi)),
            m.pending, m.cum, m.cur_t, m.t0, m.prev_bull, m.prev_bear, m.last_bull, m.last_bear)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 0, 1, 700, 1500, 4000]),
                          st.sampled_from([99.0, 99.5, 100.0, 100.5, 101.0]),
                          st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])),
                min_size=1, max_size=90),
       st.sampled_from([1.0, 3.0, 10.0]), st.sampled_from([0.0, 2.0, 8.0]),
       st.lists(st.integers(0, 90), max_size=8), st.integers(0, 1))
def test_divergence_chunks_fire_on_the_same_rows(rows, window, cooldown, cuts, every):
    t = np.cumsum([r[0] for r in rows]).tolist()
    rows = [(ti, p, d) for ti, (_, p, d) in zip(t, rows)]
    sig = settings(divergence_window_sec=window, divergence_cooldown_sec=cooldown).signals
    ref = DivergenceMachine(sig)
    want = []
    for i, r in enumerate(rows):
        bull, bear = ref.update(*r)
        want += [(i, "bull")] * bull + [(i, "bear")] * bear
    m = DivergenceMachine(sig)
    assert divergence_mixed(m, rows, cuts, every) == want
    assert live_entries(m) == live_entries(ref)


def test_long_divergence_flow_in_chunks():
    """20 000 rows of a random walk, a 60 s window, chunks of 1 to 3000 rows (some longer than
    the window, which takes the sparse table)."""
    rng = np.random.default_rng(8)
    n = 20_000
    t = (1_700_000_000_000 + np.cumsum(rng.choice([0, 1, 20, 200, 3000], n))).tolist()
    p = np.round(100 + np.cumsum(rng.normal(0, 0.02, n)), 2).tolist()
    d = np.round(rng.normal(0, 1.0, n), 3).tolist()
    rows = list(zip(t, p, d))
    sig = settings(divergence_window_sec=60.0, divergence_cooldown_sec=30.0).signals
    ref = DivergenceMachine(sig)
    want = []
    for i, r in enumerate(rows):
        bull, bear = ref.update(*r)
        want += [(i, "bull")] * bull + [(i, "bear")] * bear
    cuts = np.cumsum(rng.integers(1, 3000, 20)).tolist()
    got = divergence_mixed(DivergenceMachine(sig), rows, cuts, 0)
    assert got == want and len(want) > 20


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40), st.data())
def test_range_extreme_is_the_min_and_max_of_the_range(v, data):
    n = len(v)
    lo = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=20))
    hi = [data.draw(st.integers(a, n)) for a in lo]
    arr = np.array(v)
    for op, f in ((np.fmin, min), (np.fmax, max)):
        got = _range_extreme(arr, np.array(lo), np.array(hi), op)
        for g, a, b in zip(got.tolist(), lo, hi):
            assert (g == f(v[a:b])) if b > a else np.isnan(g)


def test_threshold_chunk_rearms_exactly_at_rearm_sec_and_cooldown():
    """test_cvdstream's hand case (quiet from 121 s is 5 s long at 126 s → re-armed, fires at
    127 s), as one chunk and cut at every row; and a zero re-arm time."""
    s = 1000
    t = [0, 1 * s, 2 * s, 4 * s, 100 * s, 119 * s, 121 * s, 125 * s, 126 * s, 127 * s]
    z = [0, 2.5, 0.2, 0.1, 0.1, 2.5, 0.3, 0.3, 0.4, 2.4]
    cases = [(5.0, 120.0, [1, 9]), (5.0, 125.0, [1, 9]), (5.0, 125.001, [1]), (5.001, 120.0, [1]),
             (0.0, 0.0, [1, 5, 9])]
    for rearm_sec, cooldown_sec, want in cases:
        for cut in range(len(t)):
            for every in (0, 1):
                m = ThresholdMachine(2.0, 1.0, rearm_sec, cooldown_sec, 1)
                got = threshold_mixed(m, t, z, [cut], every)
                assert got == want, (rearm_sec, cooldown_sec, cut)
