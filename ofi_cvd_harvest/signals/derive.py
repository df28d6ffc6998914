"""Compose the signal math into the five derived tables of one date × symbol partition.

The computation window of date D starts at a fixed anchor before 00:00 UTC — z engines
``warmup_half_lives × max(HALF_LIFE_SEC, fast half-life)`` (6 × 600 s = 1 h by default), the
regime ``warmup_half_lives × regime_half_life_sec + regime_window_sec`` (6 h 5 min) — and rows
enter it by their own event time, whatever file or date directory holds them. So D's values
are a function of the raw rows in [anchor, end of D) only: the same whether the capture
started at the anchor or days earlier, and whether the rows are stored as one date or two.
(At the anchor a statistic starts cold; its residual weight at 00:00 is 2^−6 ≈ 1.6 %.)

``derive_all`` computes the five tables of a partition at once (they share the warm-up rows
before 00:00 that the day tables do not hold), in one process, with no cache: the DQ gate
(:mod:`ofi_cvd_harvest.gate`, docs/dagster.md) calls it once per partition, stages the five
tables, checks them and publishes them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from .. import schemas
from ..settings import Settings
from ..storage import layout
from ..storage.fs import Storage
from . import cvd as cvd_mod
from . import events as ev
from . import ofi as ofi_mod
from .fusion import fusion_frame
from .prices import TRADE_COLUMNS, prices_table, scan_filter, trades_from_raw
from .rawread import empty_frame, raw_fingerprint, read_raw
from .regime import regime_at, regime_timeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    day_start: int
    day_end: int
    z_start: int        # anchor of the z engines, CVD, OFI, fusion, events
    regime_start: int   # anchor of the regime statistics

    @classmethod
    def of(cls, date: str, settings: Settings) -> "Window":
        s = settings.signals
        d0, d1 = layout.day_bounds_ms(date)
        z_ms = math.ceil(s.warmup_half_lives * max(s.half_life_sec, s.fast_half_life_sec) * 1000)
        r_ms = math.ceil((s.warmup_half_lives * s.regime_half_life_sec + s.regime_window_sec) * 1000)
        return cls(d0, d1, d0 - z_ms, d0 - max(r_ms, z_ms))


def _polars_schema(kind: str) -> pl.Schema:
    return empty_frame(schemas.DERIVED_SCHEMAS[kind]).schema


def conform(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """Exactly the columns, order and types of ``schemas.DERIVED_SCHEMAS[kind]``."""
    return df.select([pl.col(n).cast(t) for n, t in _polars_schema(kind).items()])


def compute(storage: Storage, settings: Settings, date: str, symbol: str,
            files: frozenset[str] | None = None) -> dict[str, pl.DataFrame]:
    """All five tables of the partition (date rows only, conformed); ``files`` pins the raw
    file set (default: whatever is listed now)."""
    sig = settings.signals
    w = Window.of(date, settings)
    raw_tr = read_raw(storage, date, symbol, "agg_trade", w.regime_start, TRADE_COLUMNS,
                      where=scan_filter(w.regime_start, w.day_end), allowed=files)
    trades_all = trades_from_raw(raw_tr, w.regime_start, w.day_end)
    timeline = regime_timeline(trades_all["t"], trades_all["price"], w.regime_start, w.day_end,
                               sig.regime_window_sec, sig.regime_half_life_sec)
    del raw_tr
    trades = trades_all.filter(pl.col("event_ts_ms") >= w.z_start).with_columns(
        pl.col("event_ts_ms").cum_max().alias("t"))
    prices = prices_table(trades_all, symbol, w.day_start, w.day_end)
    del trades_all

    cvd = cvd_mod.cvd_frame(trades, w.day_start, sig)
    cvd = cvd.with_columns(regime_at(cvd["event_ts_ms"], timeline))

    in_window = (pl.col("event_ts_ms") >= w.z_start) & (pl.col("event_ts_ms") < w.day_end)
    flat = read_raw(storage, date, symbol, "book", w.z_start, ofi_mod.BOOK_COLUMNS,
                    where=in_window, select=ofi_mod.flat_book_select(sig.ofi_levels), allowed=files)
    book = ofi_mod.book_from_flat(flat, w.z_start, w.day_end)
    del flat
    ofi = ofi_mod.ofi_frame(book, sig)
    ofi = ofi.with_columns(regime_at(ofi["ts_ms"], timeline))

    fusion = fusion_frame(ofi, cvd, sig)
    fusion = fusion.with_columns(regime_at(fusion["ts_ms"], timeline))

    cvd_ev = cvd.with_columns(pl.col("event_ts_ms").alias("ts_ms"))
    signals = ev.signal_events(cvd_ev, ofi, fusion, sig)
    ops = read_raw(storage, date, symbol, "ops", w.day_start, allowed=files)
    ops = ops.filter((pl.col("recv_ts_ms") >= w.day_start) & (pl.col("recv_ts_ms") < w.day_end))

    in_day = (pl.col("ts_ms") >= w.day_start) & (pl.col("ts_ms") < w.day_end)
    sym = pl.lit(symbol).alias("symbol")
    out = {
        "prices": prices,
        "cvd": cvd_ev.filter(pl.col("session") == 1).with_columns(sym),
        "ofi": ofi.filter(in_day).with_columns(sym),
        "fusion": fusion.filter(in_day).with_columns(sym),
        "events": ev.events_table(signals.filter(in_day), ops, symbol),
    }
    return {k: conform(k, v) for k, v in out.items()}


def _pinned_files(storage: Storage, settings: Settings, date: str, symbol: str) -> frozenset[str]:
    """The raw files the computation reads, listed once, so the five tables of one call come from
    the same file set even while a live capture rotates a new file a minute."""
    since = Window.of(date, settings).regime_start
    return frozenset(p for p, _, _ in raw_fingerprint(storage, date, symbol, since))


def derive_all(storage: Storage, settings: Settings, date: str, symbol: str) -> dict[str, pl.DataFrame]:
    """All five tables of a partition, keyed by kind (``schemas.DERIVED_KINDS`` order), computed
    once in this process from one pinned raw file set. Nothing is cached: the gate
    (:mod:`ofi_cvd_harvest.gate`) stages, checks and publishes the result (docs/dagster.md)."""
    t0 = time.perf_counter()
    files = _pinned_files(storage, settings, date, symbol)
    value = compute(storage, settings, date, symbol, files)
    log.info("derive %s|%s: computed from %d raw files in %.1f s", date, symbol, len(files),
             time.perf_counter() - t0)
    return {k: value[k] for k in schemas.DERIVED_KINDS}


def derive_kind(kind: str, storage: Storage, settings: Settings, date: str, symbol: str) -> pl.DataFrame:
    """One derived table of a partition (computes all five: they share the warm-up rows before
    00:00 that the day tables do not hold; use :func:`derive_all` for more than one)."""
    if kind not in schemas.DERIVED_KINDS:
        raise ValueError(f"unknown derived kind {kind!r} (one of {', '.join(schemas.DERIVED_KINDS)})")
    return derive_all(storage, settings, date, symbol)[kind]


def to_arrow(kind: str, df: pl.DataFrame) -> pa.Table:
    """The table exactly as it is stored: conformed, one chunk per column (Parquet pages follow
    the in-memory chunks, and the file must be a function of the values only)."""
    return conform(kind, df).rechunk().to_arrow().cast(schemas.DERIVED_SCHEMAS[kind])


def write_kind(storage: Storage, date: str, symbol: str, kind: str, df: pl.DataFrame) -> str:
    """Atomically replace the partition's file *without* the DQ gate (benchmarks, the demo and
    the precheck's scratch evaluation); other ``*.parquet`` files left in the kind directory (an
    older layout) are removed afterwards. Returns the written path. Deriving for readers goes
    through :func:`ofi_cvd_harvest.gate.run.gate_partition`."""
    path = storage.write_parquet(layout.derived_file(date, symbol, kind), to_arrow(kind, df))
    for other in storage.list_files(layout.derived_dir(date, symbol, kind)):
        if other != path:
            storage.delete(other)
    return path
