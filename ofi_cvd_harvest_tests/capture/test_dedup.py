"""Dedup window (RecentIdWindow): recent ids are caught, memory is bounded."""

import pytest

from ofi_cvd_harvest.capture.dedup import RecentIdWindow


def test_window_catches_recent_and_bounds_memory():
    d = RecentIdWindow(16)
    assert not any(d.seen(i) for i in range(100))
    assert len(d) == 16
    assert d.seen(99) and d.seen(84) and not d.seen(10)   # 10 was evicted long ago
    assert d.hits == 2
    with pytest.raises(ValueError):
        RecentIdWindow(0)


def test_out_of_order_and_late_ids():
    d = RecentIdWindow(8)
    for i in (100, 102, 101, 103):          # reordered delivery
        assert not d.seen(i)
    assert d.seen(101) and d.seen(103) and 102 in d
    assert not d.seen(95)                   # older than its slot's occupant (103): not recent,
    assert not d.seen(95)                   # never remembered over the newer id
    assert 103 in d and 95 not in d
    assert not d.seen(111)                  # a newer id takes the slot of 103
    assert 103 not in d and d.seen(111)
    assert len(d) == 4


def test_fixed_memory_whatever_the_number_of_ids():
    import sys
    d = RecentIdWindow(8192)
    size = sys.getsizeof(d._slots)
    for i in range(1_000_000, 1_050_000):
        d.seen(i)
    assert sys.getsizeof(d._slots) == size and len(d) == 8192
    assert all(d.seen(i) for i in range(1_050_000 - 8192, 1_050_000))
    assert not d.seen(1_050_000 - 8193)


def test_an_id_beyond_int64_changes_nothing():
    """The decoder rejects such ids (bad_id); should one get through, the window raises before
    remembering anything and the capture's frame guard skips the frame."""
    d = RecentIdWindow(8)
    assert not d.seen(5)
    for bad in (2**63 + 5, 2**64):
        with pytest.raises(OverflowError):
            d.seen(bad)
        assert bad not in d
    assert len(d) == 1 and d.seen(5) and not d.seen(6) and len(d) == 2
