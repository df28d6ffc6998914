"""Property test on the real BTCUSDT diff stream of 2024-07-18: whatever the join point and
whichever messages are lost, the book never emits a wrong row, and each run of lost messages
is exactly one detected gap.

Model: a client joins at event ``join``; whenever the book asks for a snapshot it gets the
exchange's book right after the event it just received (rebuilt by the independent
reconstruction, ``lastUpdateId`` = that event's ``u``); the events in ``drops`` never arrive.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.localbook import BookProblem, BookTop, LocalBook
from ofi_cvd_harvest.sim import recordings

FILE = HFT / "btcusdt_20240718.gz"
pytestmark = pytest.mark.skipif(not FILE.is_file(), reason="realdata/ not available")
N = 1500


@pytest.fixture(scope="module")
def stream():
    recs = recordings.load(FILE)
    snap = next(decode.depth_snapshot(r.data) for r in recs if r.kind == "snapshot")
    depth = [decode.depth_update(r.data) for r in recs if r.kind == "depth"]
    ref = LocalBook("BTCUSDT", levels=10)
    ref.apply_snapshot(snap)
    rows, snaps = {}, {}
    for i, rec in enumerate(depth):
        for o in ref.feed(rec):
            rows[o.rec.final_update_id] = (o.bid_px, o.bid_qty, o.ask_px, o.ask_qty)
        if ref.synced:
            snaps[i] = ref.snapshot(1000)
        if len(snaps) >= N:
            break
    first = min(snaps)
    return depth[first:first + N], [snaps[i] for i in range(first, first + N)], rows


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(join=st.integers(0, 300), drops=st.sets(st.integers(0, N - 1), max_size=12))
def test_any_join_point_and_losses_give_only_correct_rows(stream, join, drops):
    depth, snaps, want = stream
    book = LocalBook("BTCUSDT", levels=10)
    rows = problems = 0
    delivered_after_sync = 0
    expected_breaks = 0
    lost_run = False
    for i in range(join, N):
        if i in drops:
            lost_run = lost_run or book.synced
            continue
        if lost_run:
            expected_breaks += 1
            lost_run = False
        was_synced = book.synced
        out = book.feed(depth[i])
        if book.needs_snapshot:
            out += book.apply_snapshot(snaps[i])
        for o in out:
            if isinstance(o, BookTop):
                rows += 1
                assert (o.bid_px, o.bid_qty, o.ask_px, o.ask_qty) == want[o.rec.final_update_id]
            else:
                assert isinstance(o, BookProblem) and o.kind == "pu_break", o
                problems += 1
        delivered_after_sync += was_synced or book.synced
    assert problems == expected_breaks
    assert rows == delivered_after_sync           # every delivered event gave a row
