"""The study's statistics against brute force, and the HAC t calibrated under a true null."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ofi_cvd_harvest.research import stats


def brute_ranks(x):
    return np.array([np.sum(x < v) + (np.sum(x == v) + 1) / 2 for v in x])


def test_average_ranks_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, 200).astype(float)
    assert np.array_equal(stats.average_ranks(x), brute_ranks(x))
    assert stats.average_ranks(np.array([])).size == 0


def test_hac_grid_and_times_equal_the_pair_sum():
    rng = np.random.default_rng(1)
    n, lag = 300, 17
    e = rng.standard_normal(n)
    present = rng.random(n) < 0.7
    w = lambda k: max(0.0, 1 - abs(k) / (lag + 1))
    idx = np.flatnonzero(present)
    brute = sum(w(i - j) * e[i] * e[j] for i in idx for j in idx)
    assert stats.hac_var_grid(e, present, lag) == pytest.approx(brute, rel=1e-9)
    t = np.sort(rng.random(80) * 100)
    v = rng.standard_normal(80)
    brute_t = sum(max(0.0, 1 - abs(a - b) / 7.5) * x * y for a, x in zip(t, v) for b, y in zip(t, v))
    assert stats.hac_var_times(t, v, 7.5) == pytest.approx(brute_t, rel=1e-9)


def test_spearman_of_a_monotone_relation_is_one_and_small_samples_have_no_interval():
    x = np.arange(100, dtype=float)
    ic, lo, hi, t, n = stats.spearman_grid(x, x ** 3, np.ones(100, bool), 10)
    assert ic == pytest.approx(1.0) and n == 100
    ic, lo, hi, t, n = stats.spearman_grid(x[:5], x[:5], np.ones(5, bool), 1)
    assert math.isnan(ic) and math.isnan(t) and n == 5
    m, lo, hi, t = stats.mean_stats(np.arange(3.0), np.ones(3), 10)
    assert m == 1.0 and math.isnan(lo) and math.isnan(t)


def _overlapping_null(rng, n, h, phi):
    e = rng.standard_normal(n + h + 1)
    c = np.concatenate([[0.0], np.cumsum(e)])
    y = c[1 + h:1 + h + n] - c[1:1 + n]          # overlapping forward sums
    x = np.empty(n)
    z = rng.standard_normal(n)
    x[0] = z[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi * phi) * z[i]
    return x, y


def test_ic_t_is_calibrated_with_overlapping_horizons_and_a_persistent_signal():
    """Under independence, |t| > 1.96 about 5 % of the time. An i.i.d. standard error would
    reject ~60 % here (persistent signal, 20-s overlapping returns): the test fails without
    the overlap correction."""
    rng = np.random.default_rng(2024)
    n, h, reps = 1200, 20, 200
    ts, naive = [], []
    for _ in range(reps):
        x, y = _overlapping_null(rng, n, h, 0.95)
        ic, lo, hi, t, _ = stats.spearman_grid(x, y, np.ones(n, bool), h)
        ts.append(t)
        naive.append(ic * math.sqrt(n))
    ts = np.abs(np.array(ts))
    assert 0.01 <= np.mean(ts > 1.96) <= 0.10, np.mean(ts > 1.96)
    assert np.mean(np.abs(naive) > 1.96) > 0.2        # what ignoring the overlap would give


def test_fixed_b_critical_value_grows_with_the_bandwidth_share():
    assert stats.fixed_b_critical(0.0) == pytest.approx(stats.Z95)
    assert stats.fixed_b_critical(0.1) > stats.fixed_b_critical(0.01) > stats.Z95


def test_no_interval_when_the_bandwidth_is_most_of_the_sample():
    """A 300-s horizon on 3 minutes: the demeaned HAC sum is ~0, a falsely narrow interval."""
    rng = np.random.default_rng(3)
    x, y = _overlapping_null(rng, 177, 300, 0.5)
    ic, lo, hi, t, n = stats.spearman_grid(x, y, np.ones(177, bool), 300)
    assert math.isfinite(ic) and math.isnan(lo) and math.isnan(hi) and math.isnan(t)
    ic, lo, hi, t, n = stats.spearman_grid(x, y, np.ones(177, bool), 10)
    assert math.isfinite(lo) and math.isfinite(t)
