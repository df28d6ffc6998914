"""The event state machines of :mod:`.eventstream` over a chunk of rows at once, in numpy, on
the machines' own state (docs/signals.md "Three forms, one engine"): they fire on exactly the
rows the per-row machines fire on and leave the state as the per-row machines would.

* :func:`threshold_chunk` — the below-runs and their start times are vectorised; Python runs
  only per fire and per re-arm (rare), each found by one vectorised search.
* :func:`divergence_chunk` — the window extremes over ``[t − window, t)`` by a sparse table
  over the machine's monotonic deques (which hold every row that can still be a window extreme),
  its pending rows and the chunk; Python runs only per rising edge.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .eventstream import DivergenceMachine, ThresholdMachine


def _first(mask: np.ndarray, start: int) -> int:
    """Index of the first True at or after ``start``, or −1."""
    hit = np.flatnonzero(mask[start:])
    return int(hit[0]) + start if len(hit) else -1


def threshold_chunk(m: ThresholdMachine, t: np.ndarray, z: np.ndarray) -> list[int]:
    """Indices of the rows that fire, for rows with a non-null ``z`` (null rows have no effect
    on the machine, so the caller leaves them out)."""
    n = len(z)
    if not n:
        return []
    below = np.abs(z) < m.rearm
    over = ~below & ((z > m.threshold) if m.up else (z < -m.threshold))
    prev_below = np.empty(n, dtype=bool)
    prev_below[0] = m.run_start is not None
    prev_below[1:] = below[:-1]
    starts = np.where(below & ~prev_below, np.arange(n), -1)
    last_start = np.maximum.accumulate(starts)
    run_t = np.where(last_start >= 0, t[np.maximum(last_start, 0)],
                     m.run_start if m.run_start is not None else 0)
    rearm = below & (t - run_t >= m.rearm_ms)
    fires: list[int] = []
    armed, last, pos = m.armed, m.last_fire, 0
    while pos < n:
        if armed:
            k = _first(over, pos)
            if k < 0:
                break
            fires.append(k)
            armed, last = False, int(t[k])
        else:
            k = _first(rearm & (t >= last + m.cooldown_ms), pos)
            if k < 0:
                break
            armed = True
        pos = k + 1
    m.armed, m.last_fire = armed, last
    m.run_start = int(run_t[-1]) if below[-1] else None
    return fires


def _range_extreme(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, op) -> np.ndarray:
    """``op``-reduce (np.fmin / np.fmax) of ``v[lo:hi]`` per query; NaN where empty.
    A sparse table: level j holds the extreme of each run of 2^j values."""
    length = hi - lo
    out = np.full(len(lo), np.nan)
    ok = length > 0
    if not ok.any():
        return out
    levels = [v]
    span = 1
    while span * 2 <= int(length.max()):
        prev = levels[-1]
        levels.append(op(prev[:-span], prev[span:]))
        span *= 2
    k = np.frexp(np.where(ok, length, 1))[1] - 1          # floor(log2(length)), exact
    for j, lev in enumerate(levels):
        sel = ok & (k == j)
        if sel.any():
            a, b = lo[sel], hi[sel] - (1 << j)
            out[sel] = op(lev[a], lev[b])
    return out


def _deque_arrays(q: deque, cache: dict | None, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The deque's times and values as arrays: from ``cache`` if the deque is as the last
    chunk left it, else converted. (len, first, last) identify it: a per-row push appends an
    entry later than any the chunk left (those at its last time stayed pending) and a front
    pop changes the first entry, whose value no other entry has (values strictly monotone)."""
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit[0] == (len(q), q[0] if q else None, q[-1] if q else None):
            return hit[1], hit[2]
    m0 = len(q)
    return (np.fromiter((e[0] for e in q), np.int64, m0),
            np.fromiter((e[1] for e in q), np.float64, m0))


def _window(q: deque, base_t: np.ndarray, base_v: np.ndarray, t: np.ndarray, window_ms: int,
            op, strict_better, cache: dict | None, key: str) -> np.ndarray:
    """Per chunk row, the extreme over rows at times in ``[t − window, t)`` of the deque ``q``
    plus the base rows (the pending rows and the chunk); ``q`` is then updated in place as the
    per-row pushes would leave it (rows at the last time stay pending; rows older than the last
    window leave). ``op`` is np.fmin or np.fmax (NaN: no row).

    A window that starts in the deque is a suffix of the deque plus a prefix of the base rows:
    two accumulates. Only a window starting inside the base rows (a chunk longer than the
    window) takes the sparse table."""
    qt, qv = _deque_arrays(q, cache, key)
    m0 = len(qt)
    T = np.concatenate((qt, base_t))
    lo = np.searchsorted(T, t - window_ms, "left")
    nb = np.searchsorted(T, t, "left") - m0               # base rows before each row's time
    ext = np.full(len(t), np.nan)
    if m0:
        in_q = lo < m0
        ext[in_q] = op.accumulate(qv[::-1])[::-1][lo[in_q]]
    simple = lo <= m0
    take = simple & (nb > 0)
    ext[take] = op(ext[take], op.accumulate(base_v)[nb[take] - 1])
    if not simple.all():
        rest = ~simple
        ext[rest] = _range_extreme(base_v, lo[rest] - m0, nb[rest], op)
    # the pushes: base rows before the last time, each dropping the entries it dominates
    t_last = int(t[-1])
    n_new = int(np.searchsorted(base_t, t_last, "left"))
    if n_new:
        nt, nv = base_t[:n_new], base_v[:n_new]
        later = op.accumulate(nv[::-1])[::-1]                 # extreme of new rows j.. (incl.)
        keep = np.ones(n_new, dtype=bool)
        keep[:-1] = strict_better(nv[:-1], later[1:])
        nt, nv = nt[keep], nv[keep]
        first = np.ones(len(nt), dtype=bool)        # one entry per time, as the per-row
        first[1:] = nt[1:] != nt[:-1]               # machine pushes (the time's extreme)
        nt, nv = nt[first], nv[first]
        # old entries survive while strictly better than every new row: a prefix (monotone)
        alive = int(np.count_nonzero(strict_better(qv, later[0]))) if m0 else 0
        for _ in range(m0 - alive):
            q.pop()
        q.extend(zip(nt.tolist(), nv.tolist()))
        qt = np.concatenate((qt[:alive], nt))
        qv = np.concatenate((qv[:alive], nv))
    stale = int(np.searchsorted(qt, t_last - window_ms, "left"))
    for _ in range(stale):
        q.popleft()
    qt, qv = qt[stale:], qv[stale:]
    if cache is not None:
        cache[key] = ((len(q), q[0] if q else None, q[-1] if q else None), qt, qv)
    return ext


def divergence_chunk(m: DivergenceMachine, t: np.ndarray, price: np.ndarray,
                     delta: np.ndarray, cache: dict | None = None) -> tuple[list[int], list[int]]:
    """Indices of the rows that fire bullish and bearish (rows with a finite price only, as
    the per-row machine is fed). ``cache``: a dict kept with the machine between chunks (the
    deques as arrays, so a long window is not converted per chunk)."""
    n = len(t)
    if not n:
        return [], []
    if m.t0 is None:
        m.t0 = int(t[0])
        m.ready_t = m.t0 + m.window_ms
    cum = np.cumsum(np.concatenate(([m.cum], delta)))[1:]       # sequential, as per row
    # the rows held at the current time, as two rows carrying their extremes
    np_ = 0 if m.cur_t is None else 2
    base_t = np.concatenate((np.full(np_, m.cur_t or 0, dtype=np.int64), t))
    base_p = np.concatenate((np.array([m.pl, m.ph][:np_], dtype=np.float64), price))
    base_c = np.concatenate((np.array([m.cl, m.ch][:np_], dtype=np.float64), cum))
    w = m.window_ms
    p_lo = _window(m.p_lo, base_t, base_p, t, w, np.fmin, np.less, cache, "p_lo")
    p_hi = _window(m.p_hi, base_t, base_p, t, w, np.fmax, np.greater, cache, "p_hi")
    c_lo = _window(m.c_lo, base_t, base_c, t, w, np.fmin, np.less, cache, "c_lo")
    c_hi = _window(m.c_hi, base_t, base_c, t, w, np.fmax, np.greater, cache, "c_hi")
    ok = (t >= m.ready_t) & ~np.isnan(p_lo)
    bull = ok & (price < p_lo) & (cum >= c_lo)
    bear = ok & (price > p_hi) & (cum <= c_hi)
    fires = []
    for cond, prev, last in ((bull, m.prev_bull, m.last_bull), (bear, m.prev_bear, m.last_bear)):
        was = np.empty(n, dtype=bool)
        was[0] = prev
        was[1:] = cond[:-1]
        out = []
        for k in np.flatnonzero(cond & ~was).tolist():
            tk = int(t[k])
            if last is None or tk >= last + m.cooldown_ms:
                last = tk
                out.append(k)
        fires.append((out, last))
    (bull_f, m.last_bull), (bear_f, m.last_bear) = fires
    m.prev_bull, m.prev_bear = bool(bull[-1]), bool(bear[-1])
    m.cum = float(cum[-1])
    m.cur_t = int(t[-1])
    at_last = base_t == m.cur_t
    m.pl, m.ph = float(base_p[at_last].min()), float(base_p[at_last].max())
    m.cl, m.ch = float(base_c[at_last].min()), float(base_c[at_last].max())
    m.sync()
    return bull_f, bear_f
