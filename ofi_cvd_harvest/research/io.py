"""Read a study's inputs from the data root and write its table (docs/research.md).

Inputs are the five derived tables of the date as published under ``ofi_cvd/`` and the next
date's trades: its derived ``prices`` if present, else its raw ``agg_trade`` rows (deduplicated
as the derivation does), else none (horizons past midnight are then null and counted).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from .. import schemas
from ..signals.prices import TRADE_COLUMNS, scan_filter, trades_from_raw
from ..signals.rawread import empty_frame, raw_files, read_raw
from ..storage import layout
from ..storage.fs import Storage

STUDY_KIND = "study"
# the columns the study reads (projection keeps a full day's read to a fraction of the tables)
INPUT_COLUMNS = {
    "prices": ["agg_trade_id", "event_ts_ms", "price"],
    "ofi": ["ts_ms", "ofi_z", "regime"],
    "cvd": ["ts_ms", "z_cvd", "regime"],
    "fusion": ["ts_ms", "score_z", "regime"],
    "events": ["ts_ms", "event_type", "meta_json"],
}


def next_date(date: str) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()


def read_derived(storage: Storage, date: str, symbol: str, kind: str,
                 columns: list[str] | None = None) -> pl.DataFrame | None:
    table = storage.read_parquet(storage.list_files(layout.derived_dir(date, symbol, kind)), columns)
    return None if table is None else pl.from_arrow(table)


def load_inputs(storage: Storage, date: str, symbol: str) -> dict[str, pl.DataFrame]:
    """The five tables of the partition (an absent one is empty: a study of what exists)."""
    out = {}
    for kind in schemas.DERIVED_KINDS:
        cols = INPUT_COLUMNS[kind]
        df = read_derived(storage, date, symbol, kind, cols)
        out[kind] = df if df is not None else empty_frame(schemas.DERIVED_SCHEMAS[kind], cols)
    return out


def load_next_prices(storage: Storage, date: str, symbol: str) -> pl.DataFrame | None:
    """The next date's trades (``agg_trade_id``, ``event_ts_ms``, ``price``) or None."""
    nxt = next_date(date)
    df = read_derived(storage, nxt, symbol, "prices", INPUT_COLUMNS["prices"])
    if df is not None and len(df):
        return df
    if not raw_files(storage, nxt, symbol, "agg_trade"):
        return None
    d0, d1 = layout.day_bounds_ms(nxt)
    raw = read_raw(storage, nxt, symbol, "agg_trade", d0, TRADE_COLUMNS, where=scan_filter(d0, d1))
    trades = trades_from_raw(raw, d0, d1)
    return trades.select("agg_trade_id", "event_ts_ms", "price") if len(trades) else None


def study_frame(rows: list[dict], date: str, symbol: str) -> pl.DataFrame:
    """Rows as a frame of exactly ``schemas.STUDY``'s columns and types."""
    types = dict(empty_frame(schemas.STUDY).schema)
    body = [c for c in types if c not in ("date", "symbol")]
    df = pl.DataFrame(rows, schema={c: types[c] for c in body}) if rows else \
        empty_frame(schemas.STUDY).drop("date", "symbol")
    return df.select(pl.lit(date).alias("date"), pl.lit(symbol).alias("symbol"), *body) \
        .select([pl.col(c).cast(t) for c, t in types.items()])


def write_study(storage: Storage, date: str, symbol: str, df: pl.DataFrame) -> str:
    """Atomically replace ``ofi_cvd/date=…/symbol=…/kind=study/part-00000.parquet``."""
    table = df.rechunk().to_arrow().cast(schemas.STUDY)
    return storage.write_parquet(layout.derived_file(date, symbol, STUDY_KIND), table)


def read_studies(storage: Storage, symbol: str, dates: list[str] | None = None) -> pl.DataFrame:
    """Every stored daily study of ``symbol`` (or of ``dates``), date order."""
    frames = []
    for path in storage.list_files("ofi_cvd"):
        norm = path.replace("\\", "/")
        if f"/symbol={symbol}/kind={STUDY_KIND}/" not in norm:
            continue
        date = norm.split("/date=", 1)[1].split("/", 1)[0]
        if dates is None or date in dates:
            frames.append(pl.from_arrow(storage.read_parquet([path])))
    if not frames:
        return empty_frame(schemas.STUDY)
    return pl.concat(frames).sort("date", maintain_order=True)


def aggregate_rel(symbol: str, label: str) -> str:
    """``research/study_multiday/symbol=…/window=…/part-00000.parquet``: outside ``ofi_cvd/`` so
    the daily readers never mistake an aggregate for a date."""
    return f"research/study_multiday/symbol={symbol}/window={label}/part-00000.parquet"


def write_aggregate(storage: Storage, symbol: str, label: str, df: pl.DataFrame) -> str:
    return storage.write_parquet(aggregate_rel(symbol, label), df.rechunk().to_arrow().cast(schemas.STUDY))
