"""Garbage-collector settings for the capture loop (restored afterwards).

Why: every message allocates a few short-lived container objects (records, level tuples,
lists) and the process holds millions of long-lived ones (column buffers, the dedup LRU, the
live CVD window). CPython's default gen-0 threshold (700 allocations) runs a collection every
~100 messages, and each older-generation pass walks the whole live heap, although the hot
path creates no reference cycles. A larger gen-0 threshold and freezing the start-up heap
(``gc.freeze``: modules, settings, the Dagster context) cut the capture's CPU per message
by ~5 % in ``benchmarks/bench_throughput.py`` (docs/performance.md). Cycles are still
collected, just in fewer, larger batches.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 100


@contextlib.contextmanager
def capture_gc() -> Iterator[None]:
    """Tuned collector inside the block; the previous thresholds (and an unfrozen heap) after."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
