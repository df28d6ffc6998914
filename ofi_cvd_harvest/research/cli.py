"""``ofi-cvd-harvest study``: the signal study of one date × symbol (docs/research.md).

Reads the derived tables under the data root, writes
``ofi_cvd/date=D/symbol=S/kind=study/part-00000.parquet`` and the chart, and prints the Markdown
summary the Dagster asset shows. ``--days N`` prints the multi-day aggregate of the stored
daily studies instead (the last N dates).
"""

from __future__ import annotations

import argparse

from ..settings import SYMBOL_RE, load_settings
from ..storage import layout
from ..storage.fs import Storage


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", help="UTC date YYYY-MM-DD")
    p.add_argument("--symbol", required=True, help="symbol, e.g. BTCUSDT")
    p.add_argument("--data-dir", help="data root holding ofi_cvd/ (default: settings data_dir)")
    p.add_argument("--config", help="settings file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--dry-run", action="store_true", help="compute and print, write nothing")
    p.add_argument("--days", type=int, default=None,
                   help="print the aggregate of the last N stored daily studies instead")


def run(args: argparse.Namespace) -> int:
    symbol = args.symbol.strip().upper()
    if not SYMBOL_RE.match(symbol):
        print(f"ofi-cvd-harvest study: bad --symbol {args.symbol!r}")
        return 2
    settings = load_settings(args.config)
    storage = Storage(args.data_dir or settings.data_dir)
    if args.days is not None:
        from .aggregate import multiday
        from .summary import markdown
        if args.days < 1:
            print("ofi-cvd-harvest study: --days must be >= 1")
            return 2
        df = multiday(storage, symbol, args.days)
        if len(df) == 0:
            print(f"no daily studies of {symbol} under {storage.path('ofi_cvd')}")
            return 1
        print(markdown(df, f"Signal study {symbol} {df['date'][0]} (aggregate)"))
        return 0
    if not args.date or not layout.DATE_RE.match(args.date):
        print(f"ofi-cvd-harvest study: --date YYYY-MM-DD is required (got {args.date!r})")
        return 2
    from .io import read_derived
    if read_derived(storage, args.date, symbol, "prices", ["price"]) is None:
        print(f"no derived prices for {args.date} {symbol} under {storage.path('ofi_cvd')} "
              "(run `ofi-cvd-harvest derive` first)")
        return 1
    from .run import run_study
    res = run_study(storage, args.date, symbol, write=not args.dry_run)
    print(res.markdown)
    print()
    print(f"{len(res.table)} rows in {res.seconds:.2f} s"
          + (f"; wrote {res.path} and {res.chart_path}" if res.path else " (dry run)")
          + ("" if res.has_next_day else "; no data for the next day: horizons past midnight are null"))
    return 0
