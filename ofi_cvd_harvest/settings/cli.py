"""``ofi-cvd-harvest settings``: show the effective settings and where each comes from, or print
the settings table as Markdown (the README's table is generated from it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import markdown
from .loader import collect, load_settings
from .table import TABLE


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--markdown", action="store_true", help="print the settings table as Markdown")
    p.add_argument("--write-readme", metavar="README", type=Path,
                   help="rewrite the settings table between the markers in this file")


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown.markdown_table(), end="")
        return 0
    if args.write_readme:
        changed = markdown.update_readme(args.write_readme)
        print(f"{args.write_readme}: {'updated' if changed else 'up to date'} ({len(TABLE)} settings)")
        return 0
    load_settings(args.config)             # validates, rules between settings included
    values = collect(args.config)
    width = max(len(e.key) for e in TABLE)
    for e in TABLE:
        value, source = values[e.key]
        shown = (";".join(",".join(map(str, g)) if isinstance(g, tuple) else str(g) for g in value)
                 if isinstance(value, tuple) and value and isinstance(value[0], tuple)
                 else ",".join(map(str, value)) if isinstance(value, tuple) else str(value))
        print(f"{e.key:<{width}}  {shown}  ({source})")
    return 0
