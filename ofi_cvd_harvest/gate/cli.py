"""``ofi-cvd-harvest publish``: accept a quarantined partition explicitly (docs/dq.md).

Moves ``quarantine/date=D/symbol=S/kind=*/part-00000.parquet`` into ``ofi_cvd/`` (all tables or
none, through the same publish journal as the gate), keeps ``dq.json`` beside the former
quarantine with who accepted it, when and which checks had failed, and — when a Dagster
instance is configured (``DAGSTER_HOME``) — records the acceptance as a materialisation of
each published asset, so the UI shows who published the partition despite its checks.
"""

from __future__ import annotations

import argparse
import os

from ..settings import load_settings
from ..storage import layout
from ..storage.fs import Storage
from ..storage.objectstore import data_root
from . import objectarea
from .area import GateStorageError, local_root
from .publish import NothingQuarantined, accept
from .verdict import Acceptance, who


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", required=True, help="UTC date YYYY-MM-DD of the partition")
    p.add_argument("--symbol", required=True, help="symbol of the partition, e.g. BTCUSDT")
    p.add_argument("--data-dir", help="data root holding quarantine/ and ofi_cvd/ (default: settings data_dir)")
    p.add_argument("--config", help="settings file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--by", help="who accepts the partition (default: user@host)")


def record_in_dagster(date: str, symbol: str, paths: dict[str, str], record: dict) -> str:
    """Report a runless materialisation per published asset with the acceptance as metadata;
    returns what happened (a line for the terminal)."""
    if not os.environ.get("DAGSTER_HOME"):
        return "no DAGSTER_HOME: acceptance recorded in dq.json only"
    import dagster as dg

    from ..orchestration.assets import gate_metadata
    from ..orchestration.partitions import register_symbols

    acc = record["accepted"]
    md = gate_metadata("accepted", acc["failed_checks"], record.get("warnings", []), record)
    with dg.DagsterInstance.get() as instance:
        register_symbols(instance, [symbol])   # shown in the UI even if no sensor saw it yet
        for kind, path in paths.items():
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=kind, partition=f"{date}|{symbol}",
                description=f"published from quarantine by {acc['by']} ({acc['via']})",
                metadata={**md, "path": dg.MetadataValue.path(path)}))
    return f"recorded in Dagster ({os.environ['DAGSTER_HOME']})"


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    root_dir = data_root(args.data_dir) if args.data_dir else settings.data_dir
    symbol = args.symbol.strip().upper()
    if not layout.DATE_RE.match(args.date):
        print(f"ofi-cvd-harvest publish: bad --date {args.date!r} (YYYY-MM-DD)")
        return 2
    acceptance = Acceptance(args.by or who(), "ofi-cvd-harvest publish")
    try:
        storage = Storage(root_dir)
        if storage.local:
            paths, record = accept(local_root(storage), args.date, symbol, acceptance)
        else:   # an s3:// lake (gate/objectarea.py)
            paths, record = objectarea.accept(storage, args.date, symbol, acceptance)
    except (NothingQuarantined, GateStorageError, ValueError) as exc:
        print(f"ofi-cvd-harvest publish: {exc}")
        return 1
    failed = record["accepted"]["failed_checks"]
    print(f"{args.date} {symbol}: published {', '.join(paths)} from quarantine "
          f"(accepted by {record['accepted']['by']}; failed checks: {', '.join(failed) or 'none'})")
    print(record_in_dagster(args.date, symbol, paths, record))
    return 0
