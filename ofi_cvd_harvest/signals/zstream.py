"""The robust z engine (docs/signals.md "Robust z engine") as an incremental, sans-I/O state
machine: one ``update(t, x)`` per row, no polars, no numpy, no I/O.

Why a second form: the live monitor must follow hundreds of symbols trade by trade, and
recomputing the batch engine (``zengine.py``) over trailing windows cost more CPU than the
capture itself. Contract (docs/signals.md "Two forms, one engine"): fed the same rows in the
same order, every output equals the batch table's to 1e-9 relative (in practice bit for bit),
including warm-up, the silence rule and every scale mode — tested by property tests and on the
real recordings.

Per update: the two EW means are O(1) — the running sums Σ 2^(−Δt/h)·v and Σ 2^(−Δt/h)
(``y_i = v_i + λ_i·y_{i−1}``, exactly polars ``ewm_sum_by``), read *before* the row is added so
only earlier rows count and rows sharing a millisecond weigh the same. The MAD floor keeps the
previous ``floor_window`` values in a sorted list (bisect insert/remove: O(log W) compares plus
a C memmove of at most W pointers) and finds the median and the k-th smallest absolute deviation
by a binary search over the sorted window (O(log W)).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort

from .zparams import MAD_TO_SIGMA, MIN_SCALE, ZParams

LN2 = math.log(2.0)
_INF = math.inf
_exp = math.exp


def _nearest_window(s, m: float, k: int, g: int = -1) -> int:
    """Start of a run ``s[lo:lo+k]`` holding k values nearest to ``m`` (``s`` ascending): the k
    smallest of |s_j − m| are a contiguous run, and its start is the first i with
    s[i] + s[i+k] ≥ 2m (a monotone predicate). From a guess ``g`` (the previous row's answer,
    which moves little) the search gallops outwards, then bisects: O(log distance) ≤ O(log W);
    the answer is unique, so it does not depend on the guess."""
    top = len(s) - k
    if 0 <= g <= top:
        if g < top and m - s[g] > s[g + k] - m:          # the answer is right of g
            lo, hi, step = g + 1, top, 1
            while g + step < top:
                j = g + step
                if m - s[j] > s[j + k] - m:
                    lo = j + 1
                    step *= 2
                else:
                    hi = j
                    break
        else:                                            # the answer is g or left of it
            lo, hi, step = 0, g, 1
            while g - step >= 0:
                j = g - step
                if m - s[j] > s[j + k] - m:
                    lo = j + 1
                    break
                hi = j
                step *= 2
    else:
        lo, hi = 0, top
    while lo < hi:
        mid = (lo + hi) // 2
        if m - s[mid] > s[mid + k] - m:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _near(s, m: float, k: int, g: int) -> int:
    """:func:`_nearest_window`, first trying the guess and its two neighbours (one row's insert
    and removal move the answer by at most a step or two: no call, no loop in most rows)."""
    top = len(s) - k
    if 1 < g < top - 1:
        if m - s[g] > s[g + k] - m:                     # the answer is right of g
            if not m - s[g + 1] > s[g + 1 + k] - m:
                return g + 1
        elif m - s[g - 1] > s[g - 1 + k] - m:
            return g
        elif m - s[g - 2] > s[g - 2 + k] - m:
            return g - 1
    return _nearest_window(s, m, k, g)


def _mad(s, g: int = -1) -> tuple[float, int]:
    """(MAD, start of the nearest run) — see :func:`mad_of_sorted`."""
    n = len(s)
    h = n // 2
    if n % 2:
        m = s[h]
        lo = _near(s, m, h + 1, g)
        return max(m - s[lo], s[lo + h] - m), lo
    m = (s[h - 1] + s[h]) * 0.5
    lo = _near(s, m, h, g)
    kth = max(abs(m - s[lo]), abs(s[lo + h - 1] - m))
    nxt = abs(s[lo + h] - m) if lo + h < n else math.inf
    if lo > 0:
        left = abs(m - s[lo - 1])
        if left < nxt:
            nxt = left
    return (kth + (nxt if nxt > kth else kth)) * 0.5, lo


def mad_of_sorted(s, g: int = -1) -> float:
    """``np.median(|s − np.median(s)|)`` of a non-empty ascending sequence, bit for bit (both
    average the two middle order statistics of an even count as (a + b) · 0.5).

    The k-th smallest deviation is the farther end of the k-nearest run; for an even count the
    (k+1)-th is the nearer of the run's two outside neighbours (or the k-th itself on ties)."""
    return _mad(s, g)[0]


class RollingMad:
    """MAD of the previous ``w`` values pushed (fewer at the start): a ring and a sorted copy
    (lists: ``bisect`` on a list compares the float objects in place — measured faster than on
    an ``array('d')``, which boxes a float per comparison)."""

    __slots__ = ("w", "ring", "head", "srt", "guess")

    def __init__(self, w: int):
        self.w = int(w)
        self.ring: list[float] = []
        self.head = 0
        self.srt: list[float] = []
        self.guess = -1

    def mad(self) -> float | None:
        if not self.srt:
            return None
        mad, self.guess = _mad(self.srt, self.guess)
        return mad

    def push(self, x: float) -> None:
        srt = self.srt
        ring = self.ring
        if len(ring) == self.w:
            head = self.head
            del srt[bisect_left(srt, ring[head])]
            ring[head] = x
            self.head = head + 1 if head + 1 < self.w else 0
        else:
            ring.append(x)
        insort(srt, x)


class WarmUp:
    """Null z for the first ``warmup_rows`` rows and for ``silence_warmup_rows`` rows starting
    at a row that ends a silence longer than ``silence_sec`` (engine clock)."""

    __slots__ = ("rows", "left", "prev_t", "need", "silence_ms", "silence_rows")

    def __init__(self, p: ZParams):
        self.rows = 0
        self.left = 0
        self.prev_t: int | None = None
        self.need = p.warmup_rows
        self.silence_ms = int(round(p.silence_sec * 1000))
        self.silence_rows = p.silence_warmup_rows

    def step(self, t: int) -> bool:
        """True where this row's z is null (call once per row, in order)."""
        if self.prev_t is not None and t - self.prev_t > self.silence_ms:
            self.left = self.silence_rows
        self.prev_t = t
        null = self.rows < self.need or self.left > 0
        self.rows += 1
        if self.left:
            self.left -= 1
        return null


class ZStream:
    """One series' engine state. ``update`` returns ``(z_raw, z, scale, sigma_floor,
    floor_used)`` of the row (z null → ``None``; ``sigma_floor`` ``None`` at the first row);
    ``fast``, ``slow`` and ``mix`` of the last row stay readable as attributes."""

    __slots__ = ("p", "mode", "tau_f", "tau_s", "w_fast", "w_slow", "kc", "limit", "sf", "wf",
                 "ss", "ws", "prev_t", "mad", "warm", "fast", "slow", "mix")

    def __init__(self, p: ZParams):
        if p.scale_mode not in ("hybrid", "ewma", "mad"):
            raise ValueError(f"SCALE_MODE {p.scale_mode!r}")
        self.p = p
        self.mode = p.scale_mode
        # polars ewm_sum_by on a millisecond clock: λ = exp(−ln2 · Δt_ms / τ_ms)
        self.tau_f = p.fast_half_life_sec * 1000.0
        self.tau_s = p.half_life_sec * 1000.0
        self.w_fast = p.fast_weight
        self.w_slow = 1.0 - p.fast_weight
        self.kc = p.mad_multiplier * MAD_TO_SIGMA
        self.limit = p.winsor_limit
        self.sf = self.wf = self.ss = self.ws = 0.0
        self.prev_t: int | None = None
        self.mad = RollingMad(p.floor_window)
        self.warm = WarmUp(p)
        self.fast = self.slow = self.mix = None

    def update(self, t: int, x: float) -> tuple[float | None, float | None, float, float | None, bool]:
        """Row at engine time ``t`` (ms, non-decreasing) with value ``x`` (finite).

        The MAD (:func:`_mad`), its window and the warm-up counters are inline (not calls):
        this runs once per trade of every symbol in the live capture (issue 15)."""
        prev_t = self.prev_t
        rm = self.mad
        srt = rm.srt
        n = len(srt)
        if n:                                             # _mad, inline (bit for bit)
            h = n >> 1
            if n & 1:
                m = srt[h]
                k = h + 1
            else:
                m = (srt[h - 1] + srt[h]) * 0.5
                k = h
            g = rm.guess                                  # _near, inline
            if 1 < g < n - k - 1:
                if m - srt[g] > srt[g + k] - m:
                    lo = g + 1 if m - srt[g + 1] <= srt[g + 1 + k] - m else _nearest_window(srt, m, k, g)
                elif m - srt[g - 1] > srt[g - 1 + k] - m:
                    lo = g
                elif m - srt[g - 2] > srt[g - 2 + k] - m:
                    lo = g - 1
                else:
                    lo = _nearest_window(srt, m, k, g)
            else:
                lo = _nearest_window(srt, m, k, g)
            rm.guess = lo
            if n & 1:
                a = m - srt[lo]
                b = srt[lo + h] - m
                mad = a if a > b else b
            else:
                a = abs(m - srt[lo])
                b = abs(srt[lo + h - 1] - m)
                kth = a if a > b else b
                nxt = abs(srt[lo + h] - m) if lo + h < n else _INF
                if lo > 0:
                    a = abs(m - srt[lo - 1])
                    if a < nxt:
                        nxt = a
                mad = (kth + (nxt if nxt > kth else kth)) * 0.5
            floor = self.kc * mad
        else:
            floor = None
        mode = self.mode
        if prev_t is None:
            fast = slow = mix = None
        else:
            fast = self.sf / self.wf
            slow = self.ss / self.ws
            mix = (self.w_fast * fast + self.w_slow * slow if mode == "hybrid"
                   else slow if mode == "ewma" else None)
        if floor is None:
            scale = mix if mix is not None and mix > MIN_SCALE else MIN_SCALE
            floor_used = mode == "mad"
        elif mix is None:
            scale = floor if floor > MIN_SCALE else MIN_SCALE
            floor_used = True if mode == "mad" else False
        else:                                             # max(mix, floor, MIN_SCALE)
            scale = mix if mix > floor else floor
            if scale < MIN_SCALE:
                scale = MIN_SCALE
            floor_used = floor >= mix
        warm = self.warm                                  # WarmUp.step, inline
        if prev_t is not None and t - prev_t > warm.silence_ms:
            warm.left = warm.silence_rows
        rows = warm.rows
        warm.rows = rows + 1
        if rows < warm.need or warm.left > 0:
            z_raw = z = None
        else:
            z_raw = x / scale
            lim = self.limit
            z = -lim if z_raw < -lim else (lim if z_raw > lim else z_raw)
        if warm.left:
            warm.left -= 1
        warm.prev_t = t
        # fold the row into the state (after its own statistics: rows strictly before i)
        ax = -x if x < 0 else x
        if prev_t is None:
            self.sf = self.ss = ax
            self.wf = self.ws = 1.0
        elif t != prev_t:
            dt = -LN2 * (t - prev_t)
            lf = _exp(dt / self.tau_f)
            ls = _exp(dt / self.tau_s)
            self.sf = ax + lf * self.sf
            self.wf = 1.0 + lf * self.wf
            self.ss = ax + ls * self.ss
            self.ws = 1.0 + ls * self.ws
        else:
            self.sf += ax
            self.wf += 1.0
            self.ss += ax
            self.ws += 1.0
        self.prev_t = t
        ring = rm.ring                                    # RollingMad.push, inline
        if len(ring) == rm.w:
            head = rm.head
            del srt[bisect_left(srt, ring[head])]
            ring[head] = x
            rm.head = head + 1 if head + 1 < rm.w else 0
        else:
            ring.append(x)
        insort(srt, x)
        self.fast, self.slow, self.mix = fast, slow, mix
        return z_raw, z, scale, floor, floor_used
