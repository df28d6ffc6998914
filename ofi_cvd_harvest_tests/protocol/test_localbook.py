"""Unit tests of the diff-depth sync state machine (docs/book_and_replay.md) on small hand-made sequences."""

from __future__ import annotations

import random

from ofi_cvd_harvest.protocol.localbook import BookProblem, BookTop, LocalBook
from ofi_cvd_harvest.protocol.records import DepthSnapshot, DepthUpdate


def ev(U, u, pu, bids=(), asks=(), sym="BTCUSDT"):
    return DepthUpdate(1, 1, sym, U, u, pu, list(bids), list(asks))


def snap(last, bids, asks):
    return DepthSnapshot(last, 1, 1, list(bids), list(asks))


BASE = snap(100, [(10.0, 1.0), (9.0, 2.0), (8.0, 3.0)], [(11.0, 1.0), (12.0, 2.0)])


def rows(out):
    return [o for o in out if isinstance(o, BookTop)]


def problems(out):
    return [o for o in out if isinstance(o, BookProblem)]


def test_buffers_until_snapshot_then_drops_old_and_syncs():
    b = LocalBook("BTCUSDT", levels=2)
    assert b.needs_snapshot
    assert b.feed(ev(80, 90, 70, [(10.0, 5.0)])) == []          # u < lastUpdateId: dropped
    assert b.feed(ev(95, 105, 90, [(10.0, 7.0)])) == []         # straddles 100: first applied
    assert b.feed(ev(106, 110, 105, asks=[(11.0, 0.0)])) == []  # chained
    out = b.apply_snapshot(BASE)
    r = rows(out)
    assert len(r) == 2 and not problems(out)
    assert r[0].resynced and not r[1].resynced
    assert r[0].bid_px == [10.0, 9.0] and r[0].bid_qty == [7.0, 2.0]
    assert r[1].ask_px == [12.0] and r[1].ask_qty == [2.0]      # 0 removed the level
    assert b.synced and b.last_update_id == 110 and b.dropped_stale == 1


def test_snapshot_before_any_event_waits_for_straddling_event():
    b = LocalBook("BTCUSDT", levels=3)
    assert b.apply_snapshot(BASE) == []
    assert not b.needs_snapshot and not b.synced
    assert b.feed(ev(90, 99, 80)) == []                          # old: dropped
    r = rows(b.feed(ev(100, 101, 99, [(10.5, 1.0)])))            # U <= 100 <= u
    assert r and r[0].bid_px == [10.5, 10.0, 9.0]


def test_stale_snapshot_is_reported_and_a_newer_one_syncs():
    b = LocalBook("BTCUSDT")
    b.feed(ev(150, 160, 140, [(10.0, 4.0)]))
    out = b.apply_snapshot(BASE)                                  # 100 < U=150: events missing
    assert [p.kind for p in problems(out)] == ["stale_snapshot"] and not rows(out)
    assert b.needs_snapshot and b.buffered == 1
    out = b.apply_snapshot(snap(155, [(10.0, 3.0)], [(11.0, 1.0)]))
    assert rows(out)[0].bid_qty == [4.0]


def test_pu_break_reports_one_gap_and_requires_resync():
    b = LocalBook("BTCUSDT")
    b.apply_snapshot(BASE)
    b.feed(ev(100, 101, 99))
    out = b.feed(ev(103, 104, 102, [(10.0, 9.0)]))               # pu 102 != 101
    assert [p.kind for p in problems(out)] == ["pu_break"] and problems(out)[0].resync
    assert problems(out)[0].detail["expected_pu"] == 101
    assert b.needs_snapshot and not rows(out)
    assert b.feed(ev(105, 106, 104)) == []                        # buffered, nothing emitted
    out = b.apply_snapshot(snap(104, [(10.0, 9.0)], [(11.0, 1.0)]))
    r = rows(out)
    assert len(r) == 2 and r[0].resynced and r[0].rec.final_update_id == 104
    assert b.pu_breaks == 1 and b.resyncs == 1


def test_duplicate_or_late_copy_is_ignored_without_resync():
    b = LocalBook("BTCUSDT")
    b.apply_snapshot(BASE)
    b.feed(ev(100, 101, 99))
    b.feed(ev(102, 103, 101, [(10.0, 2.0)]))
    out = b.feed(ev(100, 101, 99, [(10.0, 5.0)]))                # duplicate of an applied one
    assert [p.kind for p in out] == ["stale_event"] and not out[0].resync
    r = rows(b.feed(ev(104, 105, 103)))
    assert r and r[0].bid_qty[0] == 2.0 and b.synced


def test_crossed_or_locked_book_is_a_detected_error_never_a_row():
    for bid in (11.0, 11.5):                                      # locked, crossed
        b = LocalBook("BTCUSDT")
        b.apply_snapshot(BASE)
        out = b.feed(ev(100, 101, 99, [(bid, 1.0)]))
        assert not rows(out)
        (p,) = problems(out)
        assert p.kind == "crossed" and p.resync and p.detail["locked"] == (bid == 11.0)
        assert b.needs_snapshot and b.crossed == 1


def test_removing_unknown_level_is_normal():
    b = LocalBook("BTCUSDT")
    b.apply_snapshot(BASE)
    r = rows(b.feed(ev(100, 101, 99, [(5.0, 0.0)], [(99.0, 0.0)])))
    assert r and r[0].bid_px == [10.0, 9.0, 8.0]


def test_memory_is_bounded_and_far_levels_pruned():
    b = LocalBook("BTCUSDT", levels=5, max_levels=50)
    b.apply_snapshot(snap(1, [(1000.0, 1.0)], [(1001.0, 1.0)]))
    u = 1
    for i in range(2000):
        out = b.feed(ev(u, u + 1, u if i else 0, [(999.0 - i * 0.5, 1.0)],
                        [(1002.0 + i * 0.5, 1.0)]))
        u += 1
        assert rows(out)
    assert len(b.bids.keys) <= b._prune_at and len(b.asks.keys) <= b._prune_at
    assert len(b.bids.qty) == len(b.bids.keys)
    assert b.bids.best() == 1000.0 and b.asks.best() == 1001.0   # the touch survives


def test_matches_naive_reference_on_random_streams():
    """Random diff streams: top-N equals a brute-force dict book at every step."""
    rng = random.Random(7)
    b = LocalBook("X", levels=5, max_levels=10_000)
    bids = {float(p): 1.0 for p in range(90, 100)}
    asks = {float(p): 1.0 for p in range(101, 111)}
    b.apply_snapshot(snap(0, bids.items(), asks.items()))
    u = 0
    for _ in range(3000):
        nb = [(float(rng.randint(80, 100)), rng.choice([0.0, 0.0, rng.uniform(0.1, 5)]))
              for _ in range(rng.randint(1, 6))]
        na = [(float(rng.randint(100, 120)), rng.choice([0.0, 0.0, rng.uniform(0.1, 5)]))
              for _ in range(rng.randint(1, 6))]
        # keep the reference uncrossed: apply, and skip the step if it would cross
        tb, ta = dict(bids), dict(asks)
        for p, q in nb:
            tb.pop(p, None) if q == 0 else tb.__setitem__(p, q)
        for p, q in na:
            ta.pop(p, None) if q == 0 else ta.__setitem__(p, q)
        if tb and ta and max(tb) >= min(ta):
            continue
        bids, asks = tb, ta
        out = b.feed(ev(u, u + 3, u, nb, na))
        u += 3
        (r,) = out
        assert r.bid_px == sorted(bids, reverse=True)[:5]
        assert r.ask_px == sorted(asks)[:5]
        assert r.bid_qty == [bids[p] for p in r.bid_px]
        assert r.ask_qty == [asks[p] for p in r.ask_px]


def test_snapshot_view_roundtrips():
    b = LocalBook("BTCUSDT")
    b.apply_snapshot(BASE)
    assert b.snapshot() is None                                   # not synced yet
    b.feed(ev(100, 101, 99, [(9.5, 1.0)]))
    s = b.snapshot(limit=2)
    assert s.last_update_id == 101 and s.bids == [(10.0, 1.0), (9.5, 1.0)]
    assert s.asks == [(11.0, 1.0), (12.0, 2.0)]
