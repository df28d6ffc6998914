"""Exact rolling median absolute deviation over the *previous* ``w`` rows, vectorised.

Why not two rolling medians: ``median_j |x_j − med_i|`` needs the deviations from *this*
window's median, a centre that changes per row, so ``rolling_median(|x − rolling_median(x)|)``
is a different statistic. Why not ``np.partition`` per window: measured ~11 s for 2 M rows.

Method: sort each window (numpy ``sort`` on chunks of a ``sliding_window_view``; ~0.4 µs a
200-wide row). In a sorted window the deviations left of the median, read right-to-left, and
those right of it, read left-to-right, are two ascending sequences; the k-th smallest deviation
is the k-th element of their merge, found for all rows at once by a vectorised binary search
(~log2(w) gather steps). The result equals ``np.median(|win − np.median(win)|)`` exactly
(both average the two middle order statistics for an even count).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_CHUNK = 4096
_THREADS = max(1, min(4, os.cpu_count() or 1))


def _kth_of_merge(s: np.ndarray, m: np.ndarray, c: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k-th and (k+1)-th (1-based) smallest of A ∪ B per row, where A_p = m − s[c−1−p] (p < c)
    and B_q = s[c+q] − m are both ascending; (k+1)-th is NaN when k = len(A) + len(B)."""
    n, w = s.shape
    a, b = c, w - c
    rows = np.arange(n)
    lo = np.full(n, max(0, k - b), dtype=np.int64)
    hi = np.full(n, min(k, a), dtype=np.int64)
    # p = how many of the k smallest come from A: the smallest p in [lo, hi] for which
    # A[p] <= B[k-p-1] is false (that predicate is monotone in p)
    for _ in range(int(np.ceil(np.log2(max(a, 1) + 1))) + 1):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        midc = np.minimum(mid, a - 1)
        qc = np.clip(k - mid - 1, 0, b - 1)
        cond = (m - s[rows, c - 1 - midc]) <= (s[rows, c + qc] - m)
        lo = np.where(active & cond, mid + 1, lo)
        hi = np.where(active & ~cond, mid, hi)
    p = lo
    q = k - p
    left = np.where(p > 0, m - s[rows, np.clip(c - p, 0, w - 1)], -np.inf)
    right = np.where(q > 0, s[rows, np.clip(c + q - 1, 0, w - 1)] - m, -np.inf)
    kth = np.maximum(left, right)
    # the next element of the merge is the smaller of A[p] and B[q] (where they exist)
    next_a = np.where(p < a, m - s[rows, np.clip(c - 1 - p, 0, w - 1)], np.inf)
    next_b = np.where(q < b, s[rows, np.clip(c + q, 0, w - 1)] - m, np.inf)
    return kth, np.minimum(next_a, next_b)


def mad_sorted(s: np.ndarray) -> np.ndarray:
    """MAD of each row of an ascending-sorted 2-D array (rows of equal width ≥ 1)."""
    n, w = s.shape
    h = w // 2
    m = s[:, h] if w % 2 else (s[:, h - 1] + s[:, h]) * 0.5
    c = (w + 1) // 2  # s[:c] <= m <= s[c:]
    if w % 2:
        return _kth_of_merge(s, m, c, h + 1)[0]
    lo, hi = _kth_of_merge(s, m, c, h)
    return (lo + hi) * 0.5


def rolling_mad_prev(x: np.ndarray, w: int) -> np.ndarray:
    """``out[i]`` = MAD of ``x[max(0, i−w):i]`` (rows strictly before i); NaN for i = 0."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = len(x)
    out = np.full(n, np.nan)
    # the first w rows have shorter windows: at most w small medians (bounded, not per-row work)
    for i in range(1, min(n, w)):
        win = x[:i]
        out[i] = np.median(np.abs(win - np.median(win)))
    if n > w:
        views = sliding_window_view(x[: n - 1], w)  # views[j] = x[j:j+w] -> row i = j + w

        def chunk(a: int) -> None:  # numpy sorts/gathers release the GIL: chunks run in parallel
            out[w + a: w + a + min(_CHUNK, len(views) - a)] = mad_sorted(np.sort(views[a:a + _CHUNK], axis=1))

        starts = range(0, len(views), _CHUNK)
        if len(starts) > 1:
            with ThreadPoolExecutor(_THREADS) as pool:
                list(pool.map(chunk, starts))
        else:
            chunk(0)
    return out
