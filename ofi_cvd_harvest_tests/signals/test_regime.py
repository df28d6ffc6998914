"""Regime labels (docs/signals.md) on constructed activity/volatility phases."""

from __future__ import annotations

import polars as pl

from ofi_cvd_harvest.signals.regime import regime_at, regime_timeline


def phases():
    t, p = [], []
    def add(start_s, end_s, step_ms, move):
        for i, ts in enumerate(range(start_s * 1000, end_s * 1000, step_ms)):
            t.append(ts); p.append(100 + (move if i % 2 else 0))
    add(0, 1200, 500, 0.01)        # 2 trades/s, small moves
    add(1200, 2400, 2000, 0.05)    # 0.5 trade/s, big moves
    add(3000, 3600, 100, 0.001)    # 10 trades/s, tiny moves (silence 2400..3000)
    return pl.Series(t), pl.Series(p, dtype=pl.Float64)


def test_labels_by_phase_and_warmup():
    t, p = phases()
    tl = regime_timeline(t, p, 0, 4_000_000, 300.0, 3600.0)
    at = lambda s: regime_at(pl.Series([s * 1000]), tl)[0]
    assert at(0) == "warmup" and at(299) == "warmup"      # < 300 s of history
    assert at(1800) == "Q_H"                              # slow but big moves
    assert at(2800) == "Q_L"                              # silence: no trades, no returns
    assert at(3500) == "A_L"                              # burst of tiny moves
    assert set(tl["regime"].unique()) <= {"A_H", "A_L", "Q_H", "Q_L"}


def test_no_look_ahead_and_empty():
    t, p = phases()
    full = regime_timeline(t, p, 0, 4_000_000, 300.0, 3600.0)
    k = 2000
    part = regime_timeline(t[:k], p[:k], 0, int(t[k - 1]) + 1, 300.0, 3600.0)
    n = len(part) - 1   # grid points up to the last trade of the prefix
    assert part.head(n).equals(full.head(n))
    empty = regime_timeline(pl.Series([], dtype=pl.Int64), pl.Series([], dtype=pl.Float64), 0, 10, 300, 3600)
    assert regime_at(pl.Series([5]), empty).to_list() == ["warmup"]
    edges = regime_at(pl.Series([-5_000_000, 10**12]), full).to_list()
    assert edges == ["warmup", full["regime"][-1]]
