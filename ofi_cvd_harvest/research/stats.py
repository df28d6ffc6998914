"""Statistics of the study with overlapping forward returns handled honestly (docs/research.md).

Forward returns at horizon h sampled every second (or at events closer than h) overlap, so
neighbouring observations are correlated and the i.i.d. standard error is too small by up to
√h. Every standard error here is Newey–West (HAC) with a Bartlett kernel *in time*: the pair
(i, j) enters with weight max(0, 1 − |t_i − t_j| / B), bandwidth B = ``BANDWIDTH_FACTOR`` × h
(at least ``MIN_BANDWIDTH_SEC``). The triangle kernel keeps the variance non-negative for any
spacing, so one formula serves the regular 1-s grid (via an FFT of the zero-filled series)
and irregular event times (pair sums). All reductions run in numpy on arrays in time order:
the results are a function of the input values only (no thread-order dependent sums).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054
BANDWIDTH_FACTOR = 3.0
MIN_BANDWIDTH_SEC = 10.0
MIN_N_INFERENCE = 10     # fewer observations: the figure is reported, its interval and t are not
MAX_B = 0.5              # bandwidth > half the sample: no interval (the HAC variance degenerates)


def bandwidth_sec(horizon_sec: float) -> float:
    return max(BANDWIDTH_FACTOR * horizon_sec, MIN_BANDWIDTH_SEC)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their average rank (Spearman's convention)."""
    n = len(x)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.empty(n, dtype=bool)
    if n:
        new[0] = True
        new[1:] = xs[1:] != xs[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    avg = (starts + ends + 1) / 2.0                      # mean of ranks start+1 .. end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def hac_var_grid(e: np.ndarray, present: np.ndarray, lag_max: int) -> float:
    """Σ_i Σ_j w(|i−j|) e_i e_j over the ``present`` points of a regular grid (``e`` already
    centred, any value where absent), Bartlett weights w(k) = 1 − k/(lag_max+1)."""
    x = np.where(present, e, 0.0)
    n = len(x)
    if n == 0:
        return 0.0
    size = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(x, size)
    ac = np.fft.irfft(f * np.conj(f), size)[: min(n, lag_max + 1)]
    w = 1.0 - np.arange(len(ac)) / (lag_max + 1.0)
    return float(max(ac[0] + 2.0 * np.dot(w[1:], ac[1:]), 0.0))


def hac_var_times(t_sec: np.ndarray, e: np.ndarray, bw_sec: float) -> float:
    """Σ_i Σ_j max(0, 1 − |t_i − t_j|/bw) e_i e_j for irregular times ``t_sec`` (ascending)."""
    total = float(np.dot(e, e))
    d = 1
    while d < len(e):
        gap = t_sec[d:] - t_sec[:-d]
        w = 1.0 - gap / bw_sec
        if not (w > 0).any():
            break
        total += 2.0 * float(np.dot(np.maximum(w, 0.0), e[d:] * e[:-d]))
        d += 1
    return max(total, 0.0)


def mean_stats(t_sec: np.ndarray, v: np.ndarray, horizon_sec: float, null: float = 0.0
               ) -> tuple[float, float, float, float]:
    """(mean, ci_low, ci_high, t) of ``v`` at times ``t_sec`` with a HAC standard error;
    t tests mean = ``null``. NaN where undefined (n < ``MIN_N_INFERENCE`` or zero variance)."""
    n = len(v)
    if n == 0:
        return (math.nan,) * 4
    m = float(np.mean(v))
    if n < MIN_N_INFERENCE:
        return m, math.nan, math.nan, math.nan
    bw = bandwidth_sec(horizon_sec)
    se = math.sqrt(hac_var_times(t_sec, v - m, bw)) / n
    span = float(t_sec[-1] - t_sec[0]) + bw / BANDWIDTH_FACTOR   # time the returns cover
    return _finish(m, se, null, bw / span if span > 0 else 1.0)


def fixed_b_critical(b: float) -> float:
    """95 % two-sided critical value of a Bartlett-kernel HAC t for bandwidth/sample = ``b``
    (Kiefer & Vogelsang 2005, fixed-b asymptotics). A bandwidth that is a sizeable part of
    the sample (300-s horizons in a few hours) fattens the t's tails: at b = 0.08 the normal
    1.96 rejects a true null about 11 % of the time (docs/research.md, Monte Carlo)."""
    b = min(max(b, 0.0), 1.0)
    return Z95 + 2.9694 * b + 0.4160 * b * b - 0.5324 * b ** 3


def _finish(m: float, se: float, null: float, b: float = 0.0) -> tuple[float, float, float, float]:
    """(m, ci_low, ci_high, t): the interval uses the fixed-b critical value and t is scaled
    by 1.96/cv, so |t| > 1.96 keeps meaning "outside the 95 % interval". With a bandwidth over
    ``MAX_B`` of the sample (a 300-s horizon in 5 minutes) the demeaned HAC sum tends to zero —
    a falsely narrow interval — so none is given."""
    if not se > 0 or b > MAX_B:
        return m, math.nan, math.nan, math.nan
    cv = fixed_b_critical(b)
    return m, m - cv * se, m + cv * se, (m - null) / se * (Z95 / cv)


def spearman_grid(x: np.ndarray, y: np.ndarray, mask: np.ndarray, horizon_sec: float
                  ) -> tuple[float, float, float, float, int]:
    """Spearman IC of ``x`` and ``y`` on the 1-s grid points in ``mask`` (both finite), its
    95 % interval and t from the HAC variance of the mean of the standardised rank products
    (lags up to the bandwidth, in seconds = grid steps). Returns (ic, lo, hi, t, n)."""
    ok = mask & np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < MIN_N_INFERENCE:
        return math.nan, math.nan, math.nan, math.nan, n
    rx = average_ranks(x[ok])
    ry = average_ranks(y[ok])
    rx = rx - rx.mean()
    ry = ry - ry.mean()
    sx, sy = math.sqrt(float(np.dot(rx, rx)) / n), math.sqrt(float(np.dot(ry, ry)) / n)
    if sx == 0 or sy == 0:
        return math.nan, math.nan, math.nan, math.nan, n
    u = (rx / sx) * (ry / sy)
    ic = float(np.mean(u))
    e = np.zeros(len(x))
    e[ok] = u - ic
    bw = bandwidth_sec(horizon_sec)
    lag = int(math.ceil(bw)) - 1
    se = math.sqrt(hac_var_grid(e, ok, lag)) / n
    lo_hi_t = _finish(ic, se, 0.0, bw / n)
    return ic, max(lo_hi_t[1], -1.0), min(lo_hi_t[2], 1.0), lo_hi_t[3], n
