"""A study partition from the simulator's market model (no network): raw → derive → study.
Test-only helper, shared by the study tests and ``benchmarks/study_markets.py``."""

from __future__ import annotations

from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.signals.derive import derive_all, write_kind
from ofi_cvd_harvest.sim.market import StudyMode
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.storage.layout import day_bounds_ms
from ofi_cvd_harvest_tests.signals.simraw import simulate

DAY = "2025-02-03"


def simulated_partition(root, symbol: str, minutes: float, study: StudyMode | None,
                        seed: int = 7, start_offset_ms: int = 60_000) -> Storage:
    """Raw and derived tables of ``minutes`` of ``symbol`` from ``DAY`` 00:00 + offset."""
    st = Storage(root)
    start = day_bounds_ms(DAY)[0] + start_offset_ms
    for sym, (trades, book) in simulate((symbol,), start, minutes, seed=seed, study=study).items():
        sy.write_raw(st, sym, "agg_trade", trades)
        sy.write_raw(st, sym, "book", book)
    for kind, df in derive_all(st, Settings(), DAY, symbol).items():
        write_kind(st, DAY, symbol, kind, df)
    return st
