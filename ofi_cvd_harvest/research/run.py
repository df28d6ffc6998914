"""One partition's study end to end: read the derived tables, compute, write the table and its
chart, return what the CLI prints and the asset shows (docs/research.md)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import polars as pl

from ..storage.fs import Storage
from . import chart, summary
from .io import load_inputs, load_next_prices, study_frame, write_study
from .study import compute_study


@dataclass(frozen=True)
class StudyResult:
    table: pl.DataFrame
    path: str | None
    chart_path: str | None
    markdown: str
    seconds: float
    has_next_day: bool


def chart_rel(date: str, symbol: str) -> str:
    return f"reports/study/date={date}/symbol={symbol}/study.svg"


def run_study(storage: Storage, date: str, symbol: str, write: bool = True) -> StudyResult:
    t0 = time.perf_counter()
    tables = load_inputs(storage, date, symbol)
    nxt = load_next_prices(storage, date, symbol)
    df = study_frame(compute_study(tables, date, nxt), date, symbol)
    title = f"Signal study {symbol} {date}"
    md = summary.markdown(df, title)
    path = chart_path = None
    if write:
        path = write_study(storage, date, symbol, df)
        chart_path = write_text(storage, chart_rel(date, symbol), chart.svg(df, title))
    return StudyResult(df, path, chart_path, md, time.perf_counter() - t0, nxt is not None)


def write_text(storage: Storage, rel: str, text: str) -> str:
    """Write a small text file atomically (temp name, then rename)."""
    final = storage.path(rel)
    storage.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
    tmp = f"{final}.{uuid.uuid4().hex[:8]}.tmp"
    with storage.fs.open_output_stream(tmp) as out:
        out.write(text.encode())
    storage.fs.move(tmp, final)
    return final
