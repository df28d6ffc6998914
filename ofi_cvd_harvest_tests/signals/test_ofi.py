"""Multi-level OFI (CKS at every level) against hand-computed rows."""

from __future__ import annotations

import polars as pl
import pytest

from ofi_cvd_harvest.signals.ofi import book_from_raw, ofi_frame, ofi_values

from .helpers import D0, book_table, settings

ROWS = [
    dict(E=D0 + 0, u=10, bids=[(100, 1), (99, 2)], asks=[(101, 3), (102, 4)]),
    dict(E=D0 + 100, u=20, bids=[(100, 1.5), (99, 2)], asks=[(101, 2), (102, 4)]),       # ties
    dict(E=D0 + 200, u=30, bids=[(100.5, 1), (100, 1.5)], asks=[(101, 2), (102, 4)]),     # bids up
    dict(E=D0 + 300, u=40, bids=[(100.5, 1), (100, 1.5)], asks=[(101, 2), (102, 4)], gap=True),
    dict(E=D0 + 400, u=50, bids=[(100, 1), (99.5, 2)], asks=[(100.8, 0.7), (101, 2)]),    # down
    dict(E=D0 + 500, u=60, bids=[(100, 1)], asks=[(100.8, 0.7), (101, 2)]),               # thin
    dict(E=D0 + 600, u=70, bids=[(100, 1)], asks=[(101, 2), (101.5, 1)]),                 # asks up
]
EXPECT = [0.0, 0.6 * 1.5, 0.6 * 1 + 0.4 * 1.5, 0.0, 0.6 * -1.7 + 0.4 * -3.5, 0.4 * -2, 0.6 * 0.7 + 0.4 * 2]


def book(rows, levels=2):
    return book_from_raw(pl.from_arrow(book_table(rows)), levels, D0 - 10_000, D0 + 86_400_000)


def test_hand_computed_two_levels():
    out = ofi_values(book(ROWS), (0.6, 0.4))
    assert out["ofi_value"].to_list() == pytest.approx(EXPECT)
    assert out["gap"].to_list() == [True, False, False, True, False, False, False]
    assert out["best_bid"].to_list()[:2] == [100.0, 100.0]
    assert out["best_ask"].to_list()[-1] == 101.0


def test_level_one_only_matches_single_level_rule():
    out = ofi_values(book(ROWS, 1), (1.0,))
    e1 = [0.0, 1.5, 1.0, 0.0, -1.7, 0.0, 0.7]
    assert out["ofi_value"].to_list() == pytest.approx(e1)


def test_duplicate_messages_keep_one_row_preferring_non_gap_and_time_order():
    rows = [ROWS[1], {**ROWS[0], "recv": D0 + 50}, {**ROWS[0], "gap": True, "recv": D0 + 40}, ROWS[2]]
    b = book(rows)
    assert b["final_update_id"].to_list() == [10, 20, 30]
    assert b["gap"].to_list() == [False, False, False]


def test_ofi_frame_z_and_settings_weights():
    sig = settings(ofi_levels=2, ofi_level_weights=(0.6, 0.4), warmup_rows=2).signals
    out = ofi_frame(book(ROWS), sig)
    assert out["ofi_value"].to_list() == pytest.approx(EXPECT)
    assert out["ofi_z"].to_list()[:2] == [None, None]
    assert (out["ofi_z"].drop_nulls().abs() <= sig.winsor_limit).all()
