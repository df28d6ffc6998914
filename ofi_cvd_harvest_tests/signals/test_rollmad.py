"""Exact rolling MAD over the previous w rows against a naive per-row reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.rollmad import mad_sorted, rolling_mad_prev


def naive(x: np.ndarray, w: int) -> np.ndarray:
    out = [np.nan]
    for i in range(1, len(x)):
        win = x[max(0, i - w):i]
        out.append(np.median(np.abs(win - np.median(win))))
    return np.array(out)


def test_hand_case():
    x = np.array([1.0, -2.0, 4.0, -8.0, 0.0])
    # windows (w=3): [1] [1,-2] [1,-2,4] [-2,4,-8]
    # MAD:            0   1.5    3        6  (median -2: deviations 0, 6, 6)
    assert rolling_mad_prev(x, 3)[1:].tolist() == [0.0, 1.5, 3.0, 6.0]


@pytest.mark.parametrize("w", [2, 3, 4, 5, 8, 200])
def test_matches_naive_reference_exactly(w):
    rng = np.random.default_rng(w)
    for x in (rng.standard_t(2, 1500), rng.integers(-3, 4, 1500).astype(float),   # many ties
              np.round(rng.exponential(1, 1500), 1)):
        assert np.array_equal(rolling_mad_prev(x, w), naive(x, w), equal_nan=True)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40),
       st.integers(1, 12))
@hsettings(max_examples=150, deadline=None)
def test_mad_sorted_property(values, dup):
    row = np.sort(np.array(values * (1 + dup % 2)))
    expect = np.median(np.abs(row - np.median(row)))
    assert mad_sorted(row[None, :])[0] == expect
