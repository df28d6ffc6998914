"""Compose the signal math into the five derived tables of one date × symbol partition.

The computation window of date D starts at a fixed anchor before 00:00 UTC — z engines
``warmup_half_lives × max(HALF_LIFE_SEC, fast half-life)`` (6 × 600 s = 1 h by default), the
regime ``warmup_half_lives × regime_half_life_sec + regime_window_sec`` (6 h 5 min) — and rows
enter it by their own event time, whatever file or date directory holds them. So D's values
are a function of the raw rows in [anchor, end of D) only: the same whether the capture
started at the anchor or days earlier, and whether the rows are stored as one date or two.
(At the anchor a statistic starts cold; its residual weight at 00:00 is 2^−6 ≈ 1.6 %.)

``derive_kind`` recomputes from raw (day-only upstream tables lack the warm-up rows) and
memoises the last partition's computation, keyed on settings and the raw files' identity, so
deriving the five kinds one by one (one Dagster asset each) costs about one computation.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import polars as pl

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


_cache_lock = threading.Lock()
_cache: dict = {}


def _computed(storage: Storage, settings: Settings, date: str, symbol: str,
              consistent: bool = False) -> dict[str, pl.DataFrame]:
    """Memoised :func:`compute` over an exact, pinned raw file set.

    ``consistent``: reuse the memoised partition even if raw files were *added* since (a live
    capture rotates a file a minute), so the tables of one run agree with each other."""
    w = Window.of(date, settings)
    base = (storage.root, date, symbol, settings.signals)
    files = raw_fingerprint(storage, date, symbol, w.regime_start)
    with _cache_lock:
        if _cache.get("base") == base and (
                _cache["files"] == files or (consistent and set(_cache["files"]) <= set(files))):
            return _cache["value"]
    value = compute(storage, settings, date, symbol, frozenset(p for p, _, _ in files))
    with _cache_lock:
        _cache.clear()
        _cache.update(base=base, files=files, value=value)
    return value


def clear_cache() -> None:
    """Drop the memoised partition (frees its memory; the next call recomputes)."""
    with _cache_lock:
        _cache.clear()


def derive_kind(kind: str, storage: Storage, settings: Settings, date: str, symbol: str,
                upstream: dict[str, pl.DataFrame] | None = None) -> pl.DataFrame:
    """One derived table of a partition, recomputed from raw (the warm-up rows before 00:00 are
    not in the upstream day tables) and memoised, so the five kinds cost one computation.

    Passing ``upstream`` (any dict, even empty) says "this call belongs to the same run as the
    upstream tables": a memoised partition is then reused even if raw files were only *added*
    since (a live capture), so e.g. ``cvd`` has exactly the rows of the ``prices`` written
    before it. Without ``upstream`` the result always reflects the raw files as they are now."""
    if kind not in schemas.DERIVED_KINDS:
        raise ValueError(f"unknown derived kind {kind!r} (one of {', '.join(schemas.DERIVED_KINDS)})")
    return _computed(storage, settings, date, symbol, consistent=upstream is not None)[kind]


def derive_all(storage: Storage, settings: Settings, date: str, symbol: str) -> dict[str, pl.DataFrame]:
    """All five tables, keyed by kind (``schemas.DERIVED_KINDS`` order)."""
    value = _computed(storage, settings, date, symbol)
    return {k: value[k] for k in schemas.DERIVED_KINDS}


def write_kind(storage: Storage, date: str, symbol: str, kind: str, df: pl.DataFrame) -> str:
    """Atomically replace the partition's file; other ``*.parquet`` files left in the kind
    directory (an older layout) are removed afterwards. Returns the written path."""
    table = conform(kind, df).to_arrow().cast(schemas.DERIVED_SCHEMAS[kind])
    path = storage.write_parquet(layout.derived_file(date, symbol, kind), table)
    for other in storage.list_files(layout.derived_dir(date, symbol, kind)):
        if other != path:
            storage.delete(other)
    return path
