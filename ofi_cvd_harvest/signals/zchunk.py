"""The z engine's third form: a chunk of rows at once, in numpy, on the state of a
:class:`~.zstream.ZStream` (docs/signals.md "Three forms, one engine").

Why: the streaming form costs ≈ 2.5 µs of Python per row, paid on every trade; a symbol
trading thousands of times a second is cheaper in vectorised chunks (docs/performance.md §7).
The chunk reads the carried state (EW sums, the MAD ring, the warm-up counters) and leaves it
as the streaming form would have, so the two forms can alternate row for row.

* EW sums ``y_i = v_i + λ_i·y_{i−1}``: the closed form
  ``y_i = (λ_a·y_{a−1} + Σ_{a≤j≤i} v_j·A_j) / A_i`` with ``A_j = 2^((t_j − t_a)/h)``, in
  segments whose ``ln A`` stays ≤ ``EXP_SPAN`` (no overflow, and A's relative error ≤ ~1e-14);
  the terms are non-negative, so the sums are exact to ~n·ε. Not bit for bit the recursion: ≈ 1e-13 relative (contract: 1e-9).
* MAD floor: the ring (oldest first) prepended to the chunk, every ``floor_window`` window
  sorted and read by :func:`.rollmad.mad_sorted` — bit for bit the streaming MAD.
* warm-up: the row index and the last silence before each row, vectorised.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .cvdstream import DAY_MS, CvdStream
from .rollmad import mad_sorted
from .zparams import MIN_SCALE
from .zstream import LN2, ZStream

EXP_SPAN = 30.0          # ln of the largest A inside one closed-form segment (e^30 ≈ 1e13)
MAX_SEGMENTS = 8         # more (a tiny half-life over a long chunk): the per-row form instead


def ew_sums(t: np.ndarray, v: np.ndarray, prev_t: int, y0: float, w0: float,
            tau_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """The sums Σ λ·v and Σ λ·1 after each row, from the carried sums ``y0``/``w0`` at
    ``prev_t`` (λ = 2^(−Δt/τ): ``exp(−ln2·Δt/τ)`` as the streaming form computes it)."""
    n = len(t)
    ys = np.empty(n)
    ws = np.empty(n)
    a, last = 0, prev_t
    k = LN2 / tau_ms
    while a < n:
        ta = int(t[a])
        lam = math.exp(-LN2 * (ta - last) / tau_ms) if ta != last else 1.0
        g = (t[a:] - ta) * k
        b = a + int(np.searchsorted(g, EXP_SPAN, side="right"))
        A = np.exp(g[: b - a])
        ys[a:b] = (lam * y0 + np.cumsum(v[a:b] * A)) / A
        ws[a:b] = (lam * w0 + np.cumsum(A)) / A
        y0, w0, last, a = float(ys[b - 1]), float(ws[b - 1]), int(t[b - 1]), b
    return ys, ws


def chunkable(zs: ZStream, t: np.ndarray) -> bool:
    """The chunk form applies once the MAD ring is full (the first ``floor_window`` rows take
    the per-row form) and the chunk spans few closed-form segments."""
    rm = zs.mad
    if zs.prev_t is None or len(rm.ring) != rm.w or not len(t):
        return False
    return (int(t[-1]) - int(t[0])) * LN2 / min(zs.tau_f, zs.tau_s) <= EXP_SPAN * (MAX_SEGMENTS - 1)


def z_chunk(zs: ZStream, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows ``t`` (int64 ms, non-decreasing, ≥ the state's last time), ``x`` (finite) through the
    engine (requires :func:`chunkable`). Returns ``(z_raw, z, scale, sigma_floor, floor_used,
    null)`` arrays (z_raw/z NaN where ``null``) and leaves ``zs`` as after the same rows
    one by one."""
    n = len(t)
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    # statistics of the rows before each row: the carried state, then the sums after row i−1
    sf, wf = ew_sums(t, ax, zs.prev_t, zs.sf, zs.wf, zs.tau_f)
    ss, ws = ew_sums(t, ax, zs.prev_t, zs.ss, zs.ws, zs.tau_s)
    fast = np.empty(n)
    slow = np.empty(n)
    fast[0] = zs.sf / zs.wf
    slow[0] = zs.ss / zs.ws
    np.divide(sf[:-1], wf[:-1], out=fast[1:])
    np.divide(ss[:-1], ws[:-1], out=slow[1:])
    rm = zs.mad
    w = rm.w
    ctx = np.fromiter(rm.ring[rm.head:] + rm.ring[:rm.head], np.float64, w)
    xa = np.concatenate((ctx, x))
    floor = zs.kc * mad_sorted(np.sort(sliding_window_view(xa[:-1], w), axis=1))
    if zs.mode == "mad":
        mix = None
        scale = np.maximum(floor, MIN_SCALE)
        floor_used = np.ones(n, dtype=bool)
    else:
        mix = zs.w_fast * fast + zs.w_slow * slow if zs.mode == "hybrid" else slow
        scale = np.maximum(np.maximum(mix, floor), MIN_SCALE)
        floor_used = floor >= mix
    warm = zs.warm
    idx = np.arange(n)
    dts = np.empty(n, dtype=np.int64)
    dts[0] = int(t[0]) - warm.prev_t
    np.subtract(t[1:], t[:-1], out=dts[1:])
    last_sil = np.maximum.accumulate(np.where(dts > warm.silence_ms, idx, -1))
    left = np.where(last_sil >= 0, warm.silence_rows - (idx - last_sil), warm.left - idx)
    null = (warm.rows + idx < warm.need) | (left > 0)
    z_raw = x / scale
    z_raw[null] = np.nan
    z = np.minimum(np.maximum(z_raw, -zs.limit), zs.limit)     # NaN stays NaN
    warm.rows += n
    warm.left = max(int(left[-1]) - 1, 0)
    warm.prev_t = int(t[-1])
    zs.sf, zs.wf, zs.ss, zs.ws = float(sf[-1]), float(wf[-1]), float(ss[-1]), float(ws[-1])
    zs.prev_t = int(t[-1])
    ring = xa[-w:].tolist()
    rm.ring, rm.head, rm.srt, rm.guess = ring, 0, sorted(ring), -1
    zs.fast, zs.slow = float(fast[-1]), float(slow[-1])
    zs.mix = None if mix is None else float(mix[-1])
    return z_raw, z, scale, floor, floor_used, null


def cvd_chunk(cs: CvdStream, ts: np.ndarray, qty: np.ndarray, ibm: np.ndarray):
    """Trades (event time ms int64, qty, is_buyer_maker) through a :class:`CvdStream` as one
    chunk: ``(t, delta, z, scale, floor_used, null)`` arrays, or ``None`` (state untouched) where
    the per-row form must run instead — ``Z_MODE=level``, a chunk not :func:`chunkable`, or one
    that is not all in the current session (at midnight, once a day)."""
    zs = cs.engine
    if zs is None or cs.day is None or not len(ts):
        return None
    days = ts // DAY_MS
    if days.min() != cs.day or days.max() != cs.day:
        return None
    t = np.maximum.accumulate(np.maximum(ts, cs.clock))
    if not chunkable(zs, t):
        return None
    delta = np.where(ibm, -qty, qty)
    cs.clock = int(t[-1])
    cs.sess[0] = float(np.cumsum(np.concatenate(([cs.sess[0]], delta)))[-1])   # sequential
    _, z, scale, _, floor_used, null = z_chunk(zs, t, delta)
    return t, delta, z, scale, floor_used, null
