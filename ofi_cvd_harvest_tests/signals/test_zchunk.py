"""The chunked z engine (signals/zchunk.py) against the streaming one: fed the same rows, cut
into chunks anywhere (alternating with per-row updates), every output and the carried state
equal the per-row form's to 1e-9 relative, nulls and floor_used exactly (docs/signals.md
"Three forms, one engine")."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.cvdstream import DAY_MS, CvdStream
from ofi_cvd_harvest.signals.zchunk import EXP_SPAN, chunkable, cvd_chunk, ew_sums, z_chunk
from ofi_cvd_harvest.signals.zparams import ZParams
from ofi_cvd_harvest.signals.zstream import ZStream

from .helpers import settings
from .streamparity import assert_same
from .test_zstream import STEPS, VALUES, stream

COLS = ("z_raw", "z", "scale", "sigma_floor", "floor_used")
CHUNK_STEPS = st.sampled_from([0, 0, 1, 3, 250, 1000, 4999, 5000, 5001])
CHUNKED_ROWS = [0]      # rows the property test sent through chunks (checked below)


def chunked(t: list[int], x: list[float], p: ZParams, cuts: list[int]) -> tuple[dict, ZStream, int]:
    """The engine over ``t``/``x`` cut at ``cuts``: each piece as one chunk where
    :func:`chunkable`, row by row otherwise. Returns the outputs, the engine, chunked rows."""
    eng = ZStream(p)
    out: dict[str, list] = {k: [] for k in COLS}
    bounds = sorted({0, len(t), *[c for c in cuts if 0 < c < len(t)]})
    done = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        ta = np.array(t[a:b], dtype=np.int64)
        if chunkable(eng, ta):
            z_raw, z, scale, floor, used, null = z_chunk(eng, ta, np.array(x[a:b]))
            for k, col in zip(COLS, (z_raw, z, scale, floor, used)):
                vals = col.tolist()
                if k in ("z_raw", "z"):
                    vals = [None if n else v for v, n in zip(vals, null.tolist())]
                out[k].extend(vals)
            done += b - a
        else:
            for ti, xi in zip(t[a:b], x[a:b]):
                for k, v in zip(COLS, eng.update(ti, xi)):
                    out[k].append(v)
    return out, eng, done


def assert_same_state(a: ZStream, b: ZStream) -> None:
    for k in ("sf", "wf", "ss", "ws"):
        assert math.isclose(getattr(a, k), getattr(b, k), rel_tol=1e-9, abs_tol=1e-300), k
    assert a.prev_t == b.prev_t
    assert sorted(a.mad.ring) == b.mad.srt == sorted(b.mad.ring) == a.mad.srt
    ra, rb = a.mad.ring, b.mad.ring
    assert ra[a.mad.head:] + ra[:a.mad.head] == rb[b.mad.head:] + rb[:b.mad.head]   # oldest first
    for k in ("rows", "left", "prev_t"):
        assert getattr(a.warm, k) == getattr(b.warm, k), k


@hsettings(max_examples=200, deadline=None)
@given(steps=st.lists(st.one_of(STEPS, CHUNK_STEPS), min_size=12, max_size=90), data=st.data(),
       mode=st.sampled_from(["hybrid", "ewma", "mad"]),
       floor_window=st.integers(2, 9), warmup=st.integers(0, 30), silence_rows=st.integers(0, 3),
       half_lives=st.sampled_from([(600.0, 60.0), (2.0, 1.0), (0.5, 30.0), (0.01, 0.02)]),
       weight=st.sampled_from([0.0, 0.2, 1.0]), limit=st.sampled_from([0.5, 8.0]))
def test_chunks_anywhere_equal_the_streaming_engine(steps, data, mode, floor_window, warmup,
                                                    silence_rows, half_lives, weight, limit):
    t = np.cumsum([1_700_000_000_000] + steps[1:]).tolist()
    x = data.draw(st.lists(VALUES, min_size=len(t), max_size=len(t)))
    cuts = [floor_window, *data.draw(st.lists(st.integers(0, len(t)), max_size=6))]
    p = ZParams(scale_mode=mode, half_life_sec=half_lives[0], fast_half_life_sec=half_lives[1],
                fast_weight=weight, winsor_limit=limit, floor_window=floor_window,
                warmup_rows=warmup, silence_warmup_rows=silence_rows)
    want = stream(t, x, p)
    got, eng, done = chunked(t, x, p, cuts)
    CHUNKED_ROWS[0] += done
    for k in COLS:
        assert_same(k, want[k], got[k])
    ref = ZStream(p)
    for ti, xi in zip(t, x):
        ref.update(ti, xi)
    assert_same_state(ref, eng)


def test_the_property_test_did_chunk():
    assert CHUNKED_ROWS[0] > 1000


def test_long_random_flow_in_chunks_of_every_size():
    """10 000 rows of bursts and silences: most of them go through chunks, including chunks
    spanning several closed-form segments of the fast half-life."""
    rng = np.random.default_rng(3)
    steps = rng.choice([0, 1, 2, 5, 40, 300, 6000, 90_000], 10_000,
                       p=[0.3, 0.2, 0.2, 0.15, 0.1, 0.04, 0.009, 0.001])
    t = (1_700_000_000_000 + np.cumsum(steps)).tolist()
    x = (rng.standard_t(2, 10_000) * rng.choice([1e-3, 1.0, 1e3], 10_000)).tolist()
    p = ZParams(fast_half_life_sec=1.0, floor_window=200)
    cuts = np.cumsum(rng.integers(1, 2500, 40)).tolist()
    want = stream(t, x, p)
    got, eng, done = chunked(t, x, p, cuts)
    assert done > 7000
    assert (np.diff(t[2000:4500]).sum() * math.log(2.0) / 1000.0) > 2 * EXP_SPAN   # segments
    for k in COLS:
        assert_same(k, want[k], got[k])


def test_ew_sums_segments_do_not_overflow_and_equal_the_recursion():
    """A chunk spanning 200 half-lives (A would reach 2^200) in segments of ≤ e^EXP_SPAN."""
    t = np.arange(0, 200_000, 7, dtype=np.int64) + 1_000
    v = np.abs(np.sin(t.astype(float)))
    ys, ws = ew_sums(t, v, 0, 3.0, 2.0, 1000.0)
    y, w, prev = 3.0, 2.0, 0
    for i, (ti, vi) in enumerate(zip(t.tolist(), v.tolist())):
        lam = math.exp(-math.log(2.0) * (ti - prev) / 1000.0)
        y, w, prev = vi + lam * y, 1.0 + lam * w, ti
        assert math.isclose(ys[i], y, rel_tol=1e-12) and math.isclose(ws[i], w, rel_tol=1e-12)
    assert (200_000 * math.log(2.0) / 1000.0) / EXP_SPAN > 4


def test_cvd_chunk_declines_level_mode_midnight_and_a_cold_engine():
    ts = np.arange(1_000, dtype=np.int64) * 10 + 1_721_347_200_000 - 5_000
    q = np.full(1_000, 0.5)
    m = np.arange(1_000) % 3 == 0
    cold = CvdStream(settings().signals)
    assert cvd_chunk(cold, ts[500:], q[500:], m[500:]) is None        # ring not full yet
    assert cold.clock is None
    warm = CvdStream(settings().signals)
    for a, b, c in zip(ts[:300].tolist(), q[:300].tolist(), m[:300].tolist()):
        warm.update(a, b, c)
    across = ts[300:]
    assert (across // DAY_MS).min() != (across // DAY_MS).max()
    before = (warm.clock, warm.sess[0], warm.engine.sf)
    assert cvd_chunk(warm, across, q[300:], m[300:]) is None          # crosses midnight
    assert (warm.clock, warm.sess[0], warm.engine.sf) == before
    assert cvd_chunk(CvdStream(settings(z_mode="level").signals), ts, q, m) is None
    same_day = ts[600:]
    for a, b, c in zip(ts[300:600].tolist(), q[300:600].tolist(), m[300:600].tolist()):
        warm.update(a, b, c)
    ref = CvdStream(settings().signals)
    for a, b, c in zip(ts[:].tolist(), q.tolist(), m.tolist()):
        row = ref.update(a, b, c)
    out = cvd_chunk(warm, same_day, q[600:], m[600:])
    assert out is not None and warm.clock == ref.clock and warm.sess[0] == ref.sess[0]
    assert math.isclose(out[2][-1], row[4], rel_tol=1e-9)
