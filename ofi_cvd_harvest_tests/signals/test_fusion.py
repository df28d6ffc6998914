"""Fusion: as-of join of z_cvd with a 5 s tolerance, nulls -> 0, weights."""

from __future__ import annotations

import polars as pl
import pytest

from ofi_cvd_harvest.signals.fusion import fusion_frame

from .helpers import settings


def test_asof_join_tolerance_and_score():
    cvd = pl.DataFrame({"t": [1000, 1000, 7000, 20000], "z_cvd": [1.0, 2.0, None, 3.0]})
    t = [500, 1000, 6000, 6001, 7000, 25000, 25001]
    ofi = pl.DataFrame({"ts_ms": t, "t": t, "ofi_z": [1.0, None, 0.5, 0.5, -1.0, 0.0, 2.0]})
    out = fusion_frame(ofi, cvd, settings(warmup_rows=0).signals)
    assert out["z_cvd"].to_list() == [0.0, 2.0, 2.0, 0.0, 0.0, 3.0, 0.0]
    assert out["ofi_z"].to_list() == [1.0, 0.0, 0.5, 0.5, -1.0, 0.0, 2.0]
    assert out["score"].to_list() == pytest.approx(
        [0.6, 0.8, 0.3 + 0.8, 0.3, -0.6, 1.2, 1.2])
    # score_z is the engine z of score: the 18 s silence before 25000 nulls that row and the next
    assert [v is None for v in out["score_z"]] == [False] * 5 + [True, True]
    assert out["score_z"][1] == pytest.approx(0.8 / 0.6)       # 1 previous |score| = 0.6
