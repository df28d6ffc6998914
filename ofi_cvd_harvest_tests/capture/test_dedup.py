"""Dedup LRU: recent ids are caught, memory is bounded."""

import pytest

from ofi_cvd_harvest.capture.dedup import DedupLRU


def test_lru_catches_recent_and_bounds_memory():
    d = DedupLRU(16)
    assert not any(d.seen(i) for i in range(100))
    assert len(d) == 16
    assert d.seen(99) and d.seen(84) and not d.seen(10)   # 10 was evicted long ago
    assert d.hits == 2
    with pytest.raises(ValueError):
        DedupLRU(0)
