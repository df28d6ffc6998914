"""Process memory hygiene for a long capture: collector settings and returning freed heap.

Collector (:func:`capture_gc`, restored afterwards). Why: every message allocates a few short-lived container objects (records, level tuples,
lists) and the process holds millions of long-lived ones (column buffers, the dedup windows, the
live CVD window). CPython's default gen-0 threshold (700 allocations) runs a collection every
~100 messages, and each older-generation pass walks the whole live heap, although the hot
path creates no reference cycles. A larger gen-0 threshold and freezing the start-up heap
(``gc.freeze``: modules, settings, the Dagster context) cut the capture's CPU per message
by ~5 % in ``benchmarks/bench_throughput.py`` (docs/performance.md). Cycles are still
collected, just in fewer, larger batches.

Heap (:func:`trim_heap`, after each rotation). Why: a rotation frees a minute of every
symbol's staged rows (~80 MB of Arrow buffers at 300 symbols) at once; glibc keeps the freed
pages, so the process RSS showed the peak of the largest rotation ever seen rather than what is
in use. ``malloc_trim(0)`` hands them back, in ~14 ms of the io thread for that minute (94 ms
when staging still held a table per partition; docs/performance.md §7). A no-op where glibc is
absent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
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


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Return freed heap pages to the OS (glibc); True if anything was released."""
    return bool(_TRIM(0)) if _TRIM is not None else False
