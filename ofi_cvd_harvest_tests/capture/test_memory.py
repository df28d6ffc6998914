"""The capture's collector settings apply inside the run only; freed heap goes back to the OS."""

import gc

import pytest

from ofi_cvd_harvest.capture.memory import GEN0_THRESHOLD, capture_gc, trim_heap


def test_thresholds_inside_and_restored_after_an_error():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        with capture_gc():
            assert gc.get_threshold()[0] == GEN0_THRESHOLD
            assert gc.get_freeze_count() > 0
            raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected():
    class Node:
        pass
    with capture_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a
        import weakref
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is None


def _rss_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_heap_returns_freed_small_allocations():
    # many small blocks (below glibc's mmap threshold) freed in the middle of the heap stay
    # resident until trimmed
    keep = []
    blocks = [bytearray(4000) for _ in range(40_000)]     # ~160 MB of small heap blocks
    for i in range(0, len(blocks), 1000):
        keep.append(blocks[i])                           # pin a few so the heap cannot shrink
    del blocks
    before = _rss_kb()
    assert trim_heap()
    assert _rss_kb() < before - 50_000                   # > 50 MB handed back
    assert len(keep) == 40
