"""Edits of a raw partition written by :func:`ofi_cvd_harvest_tests.orchestration.rawfixtures.write_raw`:
the defects and changes the gate tests need, applied to the real files (schemas kept)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ofi_cvd_harvest.schemas import AGG_TRADE, BOOK, OPS
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage

KINDS = ["prices", "ofi", "cvd", "fusion", "events"]


def raw_files(data: Path, date: str, symbol: str, stream: str) -> list[Path]:
    return sorted(Path(data, layout.raw_dir(date, symbol, stream)).glob("*.parquet"))


def _rewrite(path: Path, df: pl.DataFrame, schema: pa.Schema) -> None:
    pq.write_table(df.to_arrow().cast(schema), path)


def cross_book(data: Path, date: str, symbol: str, row: int = 5) -> None:
    """One raw book row whose best ask drops below its best bid (crossed_book_rows fails)."""
    f = raw_files(data, date, symbol, "book")[1]
    df = pl.read_parquet(f)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == row)
                         .then(pl.col("ask_px").list.eval(pl.element() - 1000.0))
                         .otherwise(pl.col("ask_px")).alias("ask_px"))
    _rewrite(f, df, BOOK)


def rescale(data: Path, date: str, symbol: str) -> None:
    """A clean change of every trade and book quantity by a factor varying with the row (a
    uniform factor would leave the z-scores, fusion and events as they were): all five tables
    get new values, every check still passes."""
    for f in raw_files(data, date, symbol, "agg_trade"):
        df = pl.read_parquet(f)
        factor = 1.0 + (pl.int_range(pl.len()) % 7).cast(pl.Float64) / 5.0
        _rewrite(f, df.with_columns(pl.col("qty") * factor), AGG_TRADE)
    for f in raw_files(data, date, symbol, "book"):
        df = pl.read_parquet(f).with_row_index("i")
        df = df.with_columns(
            pl.when(pl.col("i") % 3 == 0).then(pl.col("bid_qty").list.eval(pl.element() * 3.0))
            .otherwise(pl.col("bid_qty")).alias("bid_qty"),
            pl.when(pl.col("i") % 4 == 1).then(pl.col("ask_qty").list.eval(pl.element() * 2.5))
            .otherwise(pl.col("ask_qty")).alias("ask_qty")).drop("i")
        _rewrite(f, df, BOOK)


def short_capture(data: Path, date: str, symbol: str, seconds: int = 20) -> None:
    """Cut a one-minute fixture to a ``seconds`` capture (connect → disconnect): the covered
    window is shorter than one minute, so empty_bucket_rate cannot pass."""
    d0, _ = layout.day_bounds_ms(date)
    cut = d0 + seconds * 1000
    for stream, schema in (("agg_trade", AGG_TRADE), ("book", BOOK)):
        for f in raw_files(data, date, symbol, stream):
            _rewrite(f, pl.read_parquet(f).filter(pl.col("event_ts_ms") < cut), schema)
    Storage(data).write_parquet(layout.raw_file(date, symbol, "ops", cut, 1), pa.table({
        "recv_ts_ms": [cut], "symbol": [symbol], "event_type": ["disconnect"],
        "meta_json": [json.dumps({"conn_id": 1})]}, schema=OPS))


def published(data: Path) -> dict[str, bytes]:
    """Every file under ofi_cvd/ (relative path -> bytes)."""
    base = Path(data, "ofi_cvd")
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def table_bytes(data: Path, date: str, symbol: str, area: str = "ofi_cvd") -> dict[str, bytes]:
    base = Path(data, area, f"date={date}", f"symbol={symbol}")
    return {k: (base / f"kind={k}" / "part-00000.parquet").read_bytes()
            for k in KINDS if (base / f"kind={k}" / "part-00000.parquet").exists()}


def digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:12]
