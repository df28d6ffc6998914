"""CVD: delta signs, session reset at 00:00 UTC, Z_MODE=level, running-sum property."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.cvd import cvd_frame
from ofi_cvd_harvest.signals.prices import trades_from_raw

from .helpers import D0, settings, trades_table


def trades(rows, since=D0 - 3_600_000):
    return trades_from_raw(pl.from_arrow(trades_table(rows)), since, D0 + 86_400_000)


def test_delta_sign_and_session_cvd_resets_at_midnight():
    rows = [{"id": 1, "t": D0 - 2000, "price": 1, "qty": 1.5, "buy": True},
            {"id": 2, "t": D0 - 1000, "price": 1, "qty": 0.5, "buy": False},
            {"id": 3, "t": D0 + 10, "price": 1, "qty": 2.0, "buy": False},
            {"id": 4, "t": D0 + 20, "price": 1, "qty": 3.0, "buy": True}]
    c = cvd_frame(trades(rows), D0, settings().signals)
    assert c["delta"].to_list() == [1.5, -0.5, -2.0, 3.0]
    assert c["cvd"].to_list() == [1.5, 1.0, -2.0, 1.0]        # restarts at 00:00 UTC


def test_level_mode_hand_computed_and_first_rows_of_day_null():
    qty = [1.0, 2.0, 3.0, -1.0, 4.0]
    rows = [{"id": i + 1, "t": D0 + 1000 * i, "price": 1, "qty": abs(q), "buy": q > 0}
            for i, q in enumerate(qty)]
    sig = settings(z_mode="level", level_window=3, floor_window=3, warmup_rows=2,
                   mad_multiplier=1.0).signals
    c = cvd_frame(trades(rows), D0, sig)
    cvd = [1.0, 3.0, 6.0, 5.0, 9.0]
    assert c["cvd"].to_list() == cvd
    assert c["z_raw"].to_list()[:2] == [None, None]             # first rows of the day
    # row 3: previous 3 levels [1,3,6]: mean 10/3, sd (ddof 1) = sqrt(((1-10/3)^2+(3-10/3)^2+(6-10/3)^2)/2)
    m3, s3 = 10 / 3, np.std([1, 3, 6], ddof=1)
    floor3 = 1.4826 * 2.0                                       # MAD of [1,3,6] = 2
    assert c["scale"][3] == pytest.approx(max(s3, floor3))
    assert c["z_raw"][3] == pytest.approx((5 - m3) / max(s3, floor3))
    m4, s4 = np.mean([3, 6, 5]), np.std([3, 6, 5], ddof=1)
    floor4 = 1.4826 * 1.0                                       # MAD of [3,6,5] = 1
    assert c["z_raw"][4] == pytest.approx((9 - m4) / max(s4, floor4))
    assert c["floor_used"][4] == (floor4 >= s4)
    assert c["z_raw"][2] == pytest.approx((6 - 2) / max(np.std([1, 3], ddof=1), 1.4826 * 1.0))


@given(st.lists(st.tuples(st.integers(0, 4000), st.floats(0.001, 50), st.booleans()),
                min_size=1, max_size=200),
       st.sampled_from(["delta", "level"]))
@hsettings(max_examples=40, deadline=None)
def test_cvd_is_running_sum_of_delta_and_z_bounded(steps, mode):
    t = D0 - 60_000 + np.cumsum([s[0] for s in steps])
    rows = [{"id": i + 1, "t": int(ti), "price": 1, "qty": q, "buy": b}
            for i, (ti, (_, q, b)) in enumerate(zip(t, steps))]
    sig = settings(z_mode=mode, warmup_rows=3).signals
    c = cvd_frame(trades(rows), D0, sig)
    day = c.filter(pl.col("session") == 1)
    assert np.allclose(day["cvd"].to_numpy(), np.cumsum(day["delta"].to_numpy()), rtol=0, atol=1e-9)
    assert (c["z_cvd"].drop_nulls().abs() <= sig.winsor_limit).all()


def test_late_row_before_midnight_belongs_to_yesterday_and_order_is_kept():
    rows = [{"id": 1, "t": D0 - 10, "price": 1, "qty": 1, "buy": True},
            {"id": 2, "t": D0 + 5, "price": 1, "qty": 2, "buy": True},
            {"id": 3, "t": D0 - 3, "price": 1, "qty": 4, "buy": False},     # late: E < 00:00
            {"id": 4, "t": D0 + 10, "price": 1, "qty": 8, "buy": True}]
    for mode in ("delta", "level"):
        c = cvd_frame(trades(rows), D0, settings(z_mode=mode, warmup_rows=0).signals)
        assert c["agg_trade_id"].to_list() == [1, 2, 3, 4]
        assert c["session"].to_list() == [0, 1, 0, 1]
        assert c["cvd"].to_list() == [1.0, 2.0, -3.0, 10.0]


def test_level_mode_with_scale_mode_mad_uses_the_floor_alone():
    qty = [1.0, 2.0, 3.0, -1.0, 4.0]
    rows = [{"id": i + 1, "t": D0 + 1000 * i, "price": 1, "qty": abs(q), "buy": q > 0}
            for i, q in enumerate(qty)]
    sig = settings(z_mode="level", scale_mode="mad", level_window=3, floor_window=3,
                   warmup_rows=2, mad_multiplier=1.0).signals
    c = cvd_frame(trades(rows), D0, sig)
    assert c["scale"][3] == pytest.approx(1.4826 * 2.0) and c["floor_used"].all()
    assert c["z_raw"][3] == pytest.approx((5 - 10 / 3) / (1.4826 * 2.0))
