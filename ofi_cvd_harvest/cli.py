"""``ofi-cvd-harvest`` console script: a thin dispatcher.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported lazily so ``simulate`` does not pay for Dagster.
Settings errors print one line naming the setting and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .settings import SettingsError

SUBCOMMANDS = {
    "simulate": ("ofi_cvd_harvest.sim.cli", "run the local Binance USDT-M exchange simulator"),
    "capture": ("ofi_cvd_harvest.capture.cli", "capture trades and book into raw partitions"),
    "derive": ("ofi_cvd_harvest.signals.cli", "derive prices/ofi/cvd/fusion/events partitions"),
    "publish": ("ofi_cvd_harvest.gate.cli", "publish a quarantined partition (explicit acceptance)"),
    "study": ("ofi_cvd_harvest.research.cli", "signal study of a date × symbol: forward returns and IC"),
    "validate": ("ofi_cvd_harvest.dq.cli", "evaluate the DQ gate (DoD) and write a report"),
    "demo": ("ofi_cvd_harvest.demo", "quick start: simulator + 2-minute capture + summary"),
    "settings": ("ofi_cvd_harvest.settings.cli", "show the effective settings, or the table as Markdown"),
    "sql": ("ofi_cvd_harvest.query", "SQL (DuckDB) over the lake: a view per table"),
    "plot": ("ofi_cvd_harvest.plot", "one figure of a day: price, CVD, z scores, regime, events, gaps"),
    "shards": ("ofi_cvd_harvest.universe.cli", "the capture shard plan of the exchange's universe (docs/deploy.md)"),
    "status": ("ofi_cvd_harvest.lake_status", "what is captured, published, quarantined; last DQ verdicts"),
    "instance": ("ofi_cvd_harvest.deploy.cli", "check the Dagster instance ($DAGSTER_HOME): URL, storage, run queue"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="ofi-cvd-harvest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    modules = {}
    for name, (mod_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if wanted is None or wanted == name:  # import only what is run
            modules[name] = importlib.import_module(mod_name)
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except SettingsError as exc:
        print(f"ofi-cvd-harvest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
