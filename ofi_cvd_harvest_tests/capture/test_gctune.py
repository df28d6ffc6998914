"""The capture's collector settings apply inside the run only, even when the run fails."""

import gc

import pytest

from ofi_cvd_harvest.capture.gctune import GEN0_THRESHOLD, capture_gc


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
