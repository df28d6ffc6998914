"""Read the lake without knowing its layout: ``scan(kind, …) -> polars.LazyFrame``.

Researchers ask for a table by name (``prices``, ``ofi``, ``cvd``, ``fusion``, ``events``,
``raw_agg_trade``, ``raw_book``, ``raw_ops``), a date range and symbols; this module lists only
the matching partition directories (``date=…`` then ``symbol=…`` then the table's own
directory, never a recursive glob of the whole tree) and hands polars the file list.

Which partitions are visible (docs/reading.md, docs/dq.md "The publish rule"): derived tables
come from ``ofi_cvd/`` — only what passed the DQ gate or was explicitly accepted. With
``include_quarantine`` the quarantined version of a partition (``quarantine/…``, the newer
derivation that failed its checks) is added, and replaces the published one where both exist;
a ``quarantined`` boolean column says which rows are which. Raw streams are not gated.

Columns: the table's schema (``schemas.py``, described in ``schemas.COLUMN_DOCS``) plus the
hive column ``date`` (a ``Date``); ``symbol`` is the partition's symbol, as every hive-aware
reader (polars, DuckDB, Spark) reports it — for ``raw_ops`` rows written for every symbol
(``symbol`` ``""`` in the file) that is the partition they were filed under.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Iterable

import polars as pl
import pyarrow.fs as pafs

from . import schemas
from .storage import layout
from .storage.fs import Storage

RAW_PREFIX = "raw_"
KINDS: tuple[str, ...] = (*schemas.DERIVED_KINDS, *(RAW_PREFIX + s for s in schemas.RAW_STREAMS))
QUARANTINE_DIR = "quarantine"      # gate/area.py QUARANTINE_DIR (imported lazily: no gate deps)


@dataclass(frozen=True)
class Part:
    """One partition's files of one table."""

    date: str
    symbol: str
    files: tuple[str, ...]
    quarantined: bool = False


def _schema(kind: str):
    if kind.startswith(RAW_PREFIX):
        return schemas.RAW_SCHEMAS[kind[len(RAW_PREFIX):]]
    return schemas.DERIVED_SCHEMAS[kind]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown table {kind!r} (one of {', '.join(KINDS)})")
    return kind


def _date(value, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    if not layout.DATE_RE.match(text):
        raise ValueError(f"{name} must be a date YYYY-MM-DD (got {value!r})")
    return text


def _symbols(symbols: str | Iterable[str] | None) -> list[str] | None:
    if symbols is None:
        return None
    if isinstance(symbols, str):
        symbols = symbols.split(",")
    out = sorted({s.strip().upper() for s in symbols if s.strip()})
    for s in out:
        layout.derived_dir("2000-01-01", s, "prices")   # validates the symbol (ValueError)
    return out


def _children(storage: Storage, rel: str, key: str) -> list[str]:
    """Values ``v`` of the ``key=v`` directories directly under ``rel`` (one listing)."""
    sel = pafs.FileSelector(storage.path(rel), recursive=False, allow_not_found=True)
    prefix = key + "="
    out = []
    for info in storage.fs.get_file_info(sel):
        name = info.base_name
        if info.type == pafs.FileType.Directory and name.startswith(prefix):
            out.append(name[len(prefix):])
    return sorted(out)


def _files(storage: Storage, rel: str) -> tuple[str, ...]:
    """Final Parquet files directly in ``rel`` (temp files end ``.tmp`` and never match)."""
    sel = pafs.FileSelector(storage.path(rel), recursive=False, allow_not_found=True)
    return tuple(sorted(i.path for i in storage.fs.get_file_info(sel)
                        if i.type == pafs.FileType.File and i.path.endswith(".parquet")))


def _table_dir(kind: str, date: str, symbol: str) -> str:
    if kind.startswith(RAW_PREFIX):
        return layout.raw_dir(date, symbol, kind[len(RAW_PREFIX):])
    return layout.derived_dir(date, symbol, kind)


def _tree(kind: str) -> str:
    """``raw`` or ``ofi_cvd``: the first component of the layout's own paths."""
    return _table_dir(kind, "2000-01-01", "X0").split("/", 1)[0]


def _partitions(storage: Storage, tree: str, start: str | None, end: str | None,
                symbols: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for d in _children(storage, tree, "date"):
        if not layout.DATE_RE.match(d) or (start and d < start) or (end and d > end):
            continue
        found = _children(storage, f"{tree}/date={d}", "symbol")
        out += [(d, s) for s in found if symbols is None or s in symbols]
    return out


def parts(kind: str, *, data_dir: str | os.PathLike | None = None,
          symbols: str | Iterable[str] | None = None, start=None, end=None,
          include_quarantine: bool = False, storage: Storage | None = None) -> list[Part]:
    """The partitions (and their files) :func:`scan` reads, date then symbol order."""
    check_kind(kind)
    storage = storage or Storage(_data_dir(data_dir))
    lo, hi, syms = _date(start, "start"), _date(end, "end"), _symbols(symbols)
    out: dict[tuple[str, str], Part] = {}
    for d, s in _partitions(storage, _tree(kind), lo, hi, syms):
        files = _files(storage, _table_dir(kind, d, s))
        if files:
            out[(d, s)] = Part(d, s, files)
    if include_quarantine and not kind.startswith(RAW_PREFIX):
        name = layout.derived_file("2000-01-01", "X0", kind).split("/", 3)[3]  # kind=K/part-…
        for d, s in _partitions(storage, QUARANTINE_DIR, lo, hi, syms):
            rel = f"{QUARANTINE_DIR}/date={d}/symbol={s}/{name}"
            if storage.exists(rel):   # the newer derivation replaces the published one
                out[(d, s)] = Part(d, s, (storage.path(rel),), quarantined=True)
    return [out[k] for k in sorted(out)]


def _data_dir(data_dir) -> str:
    if data_dir is not None:
        return str(data_dir)
    from .settings import load_settings
    return str(load_settings().data_dir)


def empty(kind: str, include_quarantine: bool = False) -> pl.DataFrame:
    """The table's columns with no rows (what a scan of nothing returns)."""
    df = pl.from_arrow(_schema(kind).empty_table())
    df = df.with_columns(pl.lit(None, pl.Date).alias("date"))
    if include_quarantine and not kind.startswith(RAW_PREFIX):
        df = df.with_columns(pl.lit(False).alias("quarantined"))
    return df


def _scan_files(files: list[str], storage: Storage) -> pl.LazyFrame:
    lf = pl.scan_parquet(files if storage.local else [f"{_scheme(storage)}{f}" for f in files],
                         hive_partitioning=True,
                         hive_schema={"date": pl.Date, "symbol": pl.String,
                                      "kind": pl.String, "stream": pl.String})
    names = lf.collect_schema().names()
    return lf.drop([c for c in ("kind", "stream") if c in names])


def _scheme(storage: Storage) -> str:
    return f"{storage.fs.type_name}://"


def scan(kind: str, *, data_dir: str | os.PathLike | None = None,
         symbols: str | Iterable[str] | None = None, start=None, end=None,
         include_quarantine: bool = False) -> pl.LazyFrame:
    """Lazy frame over ``kind`` for the UTC dates ``start``..``end`` (inclusive, partition
    dates) and ``symbols`` (default: all), with the hive column ``date``.

    ``data_dir`` defaults to the settings' ``data_dir``. Only published derived partitions are
    visible unless ``include_quarantine`` (see the module docstring)."""
    storage = Storage(_data_dir(data_dir))
    found = parts(kind, symbols=symbols, start=start, end=end,
                  include_quarantine=include_quarantine, storage=storage)
    if not found:
        return empty(kind, include_quarantine).lazy()
    order = [*_schema(kind).names, "date"]
    runs: list[tuple[bool, list[str]]] = []   # consecutive partitions of one origin, in order
    for p in found:
        if runs and runs[-1][0] == p.quarantined:
            runs[-1][1].extend(p.files)
        else:
            runs.append((p.quarantined, list(p.files)))
    frames = []
    for flag, files in runs:
        lf = _scan_files(files, storage).select(order)
        if include_quarantine and not kind.startswith(RAW_PREFIX):
            lf = lf.with_columns(pl.lit(flag).alias("quarantined"))
        frames.append(lf)
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
