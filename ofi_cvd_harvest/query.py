"""``ofi-cvd-harvest sql "select …"``: DuckDB over the lake, one view per table.

Views ``prices``, ``ofi``, ``cvd``, ``fusion``, ``events``, ``raw_agg_trade``, ``raw_book`` and
``raw_ops`` read exactly the files :func:`ofi_cvd_harvest.read.parts` lists (published derived
partitions only unless ``--include-quarantine``; the same columns as ``read.scan``, with the
hive column ``date``), so the SQL and the polars reader cannot disagree (docs/reading.md).
DuckDB streams the Parquet files itself; nothing is loaded before the query runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

from . import read

FORMATS = ("table", "csv", "parquet")


def _list_sql(files) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _select(kind: str, files, flag: bool | None) -> str:
    cols = ", ".join(f'"{c}"' for c in read.empty(kind).columns)
    extra = "" if flag is None else f", {str(flag).lower()} AS quarantined"
    return (f"SELECT {cols}{extra} FROM read_parquet({_list_sql(files)}, hive_partitioning = true, "
            "hive_types = {'date': DATE, 'symbol': VARCHAR})")


def view_sql(kind: str, found: list[read.Part], include_quarantine: bool) -> str | None:
    """The ``SELECT`` behind one view (None: no files; the view is then an empty table)."""
    if not found:
        return None
    flagged = include_quarantine and not kind.startswith(read.RAW_PREFIX)
    selects = []
    for flag in (False, True):
        files = [f for p in found if p.quarantined == flag for f in p.files]
        if files:
            selects.append(_select(kind, files, flag if flagged else None))
    return " UNION ALL ".join(selects)


def connect(data_dir=None, *, include_quarantine: bool = False,
            con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per table of ``data_dir``'s lake."""
    con = con or duckdb.connect()
    root = read._data_dir(data_dir)
    for kind in read.KINDS:
        found = read.parts(kind, data_dir=root, include_quarantine=include_quarantine)
        body = view_sql(kind, found, include_quarantine)
        if body is None:   # typed and empty, so a query over a table not yet written still runs
            con.register(f"_empty_{kind}", read.empty(kind, include_quarantine).to_arrow())
            body = f"SELECT * FROM _empty_{kind}"
        con.execute(f'CREATE OR REPLACE VIEW "{kind}" AS {body}')
    return con


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help='SQL over the views prices, ofi, cvd, fusion, events, '
                                 'raw_agg_trade, raw_book, raw_ops (e.g. "select count(*) from cvd")')
    p.add_argument("--data-dir", help="data root holding raw/ and ofi_cvd/ (default: settings data_dir)")
    p.add_argument("--config", help="settings file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--include-quarantine", action="store_true",
                   help="also show quarantined derived partitions (column quarantined)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (printed, default), csv or parquet (written to --out)")
    p.add_argument("--out", help="output file for --format csv|parquet (csv: '-' = stdout)")
    p.add_argument("--max-rows", type=int, default=40, help="rows printed by --format table")


def run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir
    if data_dir is None:
        from .settings import load_settings
        data_dir = load_settings(args.config).data_dir
    if args.format == "parquet" and not args.out:
        print("ofi-cvd-harvest sql: --format parquet needs --out FILE", file=sys.stderr)
        return 2
    if not Path(data_dir).is_dir() and "://" not in str(data_dir):
        print(f"ofi-cvd-harvest sql: no data directory {data_dir}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    con = connect(data_dir, include_quarantine=args.include_quarantine)
    try:
        rel = con.sql(args.query)
        if rel is None:   # a statement without a result (e.g. SET)
            return 0
        if args.format == "table":
            rel.show(max_rows=args.max_rows, max_width=10_000)
        elif args.format == "csv" and args.out in (None, "-"):
            sys.stdout.write(rel.pl().write_csv())
        elif args.format == "csv":
            rel.write_csv(args.out)
        else:
            rel.write_parquet(args.out, compression="zstd")
    except duckdb.Error as exc:
        print(f"ofi-cvd-harvest sql: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    if args.out not in (None, "-"):
        print(f"wrote {args.out} ({time.perf_counter() - t0:.2f} s)", file=sys.stderr)
    return 0
