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
deriving the five kinds one by one in one process (one Dagster asset each, in-process executor)
costs about one computation. With ``share`` (the default) it also shares the computation with
other processes through the disk (:mod:`.staging`): the first process computes under the
partition's lock and stages the five tables, the others wait and read their one table — the
multiprocess executor's five step processes cost one computation too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import polars as pl

from .. import schemas
from ..settings import Settings
from ..storage import layout
from ..storage.fs import Storage
from . import cvd as cvd_mod
from . import events as ev
from . import ofi as ofi_mod
from . import staging
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


_cache_lock = threading.Lock()
_cache: dict = {}


def _memo_base(storage: Storage, settings: Settings, date: str, symbol: str) -> tuple:
    return (storage.root, date, symbol, settings.signals)


def _fingerprint(storage: Storage, settings: Settings, date: str, symbol: str) -> tuple:
    return raw_fingerprint(storage, date, symbol, Window.of(date, settings).regime_start)


def _memo_get(base: tuple, files: tuple, consistent: bool) -> dict[str, pl.DataFrame] | None:
    with _cache_lock:
        if _cache.get("base") == base and (
                _cache["files"] == files or (consistent and set(_cache["files"]) <= set(files))):
            return _cache["value"]
    return None


def _compute_memo(storage: Storage, settings: Settings, date: str, symbol: str,
                  files: tuple) -> dict[str, pl.DataFrame]:
    """:func:`compute` over exactly ``files``, memoised (replacing the previous partition)."""
    t0 = time.perf_counter()
    value = compute(storage, settings, date, symbol, frozenset(p for p, _, _ in files))
    log.info("derive %s|%s: computed from %d raw files in %.1f s", date, symbol, len(files),
             time.perf_counter() - t0)
    with _cache_lock:
        _cache.clear()
        _cache.update(base=_memo_base(storage, settings, date, symbol), files=files, value=value)
    return value


def _computed(storage: Storage, settings: Settings, date: str, symbol: str,
              consistent: bool = False) -> dict[str, pl.DataFrame]:
    """Memoised :func:`compute` over an exact, pinned raw file set.

    ``consistent``: reuse the memoised partition even if raw files were *added* since (a live
    capture rotates a file a minute), so the tables of one run agree with each other."""
    files = _fingerprint(storage, settings, date, symbol)
    value = _memo_get(_memo_base(storage, settings, date, symbol), files, consistent)
    return value if value is not None else _compute_memo(storage, settings, date, symbol, files)


def _shared(kind: str, storage: Storage, settings: Settings, date: str, symbol: str,
            consistent: bool) -> pl.DataFrame:
    """One table through the in-process memo, else the partition's staged results (read under
    its lock), else computed under the lock and staged for the other processes."""
    base = _memo_base(storage, settings, date, symbol)
    value = _memo_get(base, _fingerprint(storage, settings, date, symbol), consistent)
    if value is not None:
        return value[kind]
    t0 = time.perf_counter()
    with staging.open_stage(storage, date, symbol) as stage:
        waited = time.perf_counter() - t0
        # the raw file set as it is once the lock is ours (a waiter sees what the holder staged)
        files = _fingerprint(storage, settings, date, symbol)
        df = stage.load(kind, settings.signals, files, consistent=consistent)
        if df is not None:
            log.info("derive %s|%s: %s read from staging (waited %.1f s for the lock)",
                     date, symbol, kind, waited)
            return df
        value = _compute_memo(storage, settings, date, symbol, files)
        stage.save(settings.signals, files, value)
    staging.sweep(storage)
    return value[kind]


def clear_cache() -> None:
    """Drop the memoised partition (frees its memory; the next call recomputes)."""
    with _cache_lock:
        _cache.clear()


def derive_kind(kind: str, storage: Storage, settings: Settings, date: str, symbol: str,
                upstream: dict[str, pl.DataFrame] | None = None, *,
                share: bool = True) -> pl.DataFrame:
    """One derived table of a partition, recomputed from raw (the warm-up rows before 00:00 are
    not in the upstream day tables) and memoised, so the five kinds cost one computation.

    Passing ``upstream`` (any dict, even empty) says "this call belongs to the same run as the
    upstream tables": a memoised (or staged) partition is then reused even if raw files were
    only *added* since (a live capture), so e.g. ``cvd`` has exactly the rows of the ``prices``
    written before it. Without ``upstream`` the result always reflects the raw files as they
    are now.

    ``share`` (local data roots): processes deriving the same partition compute it once — the
    first under the partition's lock, staging all five tables on disk (:mod:`.staging`); the
    others wait for the lock, then read their table. A staged table is used only if it was
    computed by the same code and ``settings.signals`` from the same raw files (the table is
    the same as a fresh computation's); :func:`write_kind` discards it. ``share=False`` when
    every kind is derived in this process (the memo suffices; nothing is written to disk)."""
    if kind not in schemas.DERIVED_KINDS:
        raise ValueError(f"unknown derived kind {kind!r} (one of {', '.join(schemas.DERIVED_KINDS)})")
    consistent = upstream is not None
    if share and staging.supported(storage):
        return _shared(kind, storage, settings, date, symbol, consistent)
    return _computed(storage, settings, date, symbol, consistent=consistent)[kind]


def derive_all(storage: Storage, settings: Settings, date: str, symbol: str) -> dict[str, pl.DataFrame]:
    """All five tables, keyed by kind (``schemas.DERIVED_KINDS`` order), computed in this process
    (memoised; nothing staged)."""
    value = _computed(storage, settings, date, symbol)
    return {k: value[k] for k in schemas.DERIVED_KINDS}


def write_kind(storage: Storage, date: str, symbol: str, kind: str, df: pl.DataFrame) -> str:
    """Atomically replace the partition's file; other ``*.parquet`` files left in the kind
    directory (an older layout) are removed afterwards, and so is the kind's staged table
    (:mod:`.staging`). Returns the written path."""
    # one chunk per column: Parquet pages follow the in-memory chunks, and the file must be a
    # function of the values only (a staged table is read back in many chunks)
    table = conform(kind, df).rechunk().to_arrow().cast(schemas.DERIVED_SCHEMAS[kind])
    path = storage.write_parquet(layout.derived_file(date, symbol, kind), table)
    for other in storage.list_files(layout.derived_dir(date, symbol, kind)):
        if other != path:
            storage.delete(other)
    staging.discard(storage, date, symbol, kind)   # its staged copy has served
    return path
