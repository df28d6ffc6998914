"""``ofi-cvd-harvest shards``: print the capture shard plan of the exchange's universe — shard,
symbols, share of the 24 h quote volume, streams per connection (docs/deploy.md "Capture
shards"). The plan capture_sensor would start from; with ``--previous`` (a plan printed by
``--json``) the stable update the sensor makes on its next evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..settings import check_value, load_settings
from .market import UniverseError, fetch_universe
from .plan import ShardPlan, plan_shards, shard_volumes, streams_per_connection


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shards", type=int, default=None,
                   help="number of shards (default: capture.shards / CAPTURE_SHARDS)")
    p.add_argument("--rest-base-url", default=None,
                   help="exchange REST base URL (default: exchange.rest_base_url / REST_BASE_URL)")
    p.add_argument("--previous", type=Path, default=None, metavar="PLAN.json",
                   help="a plan printed by --json: keep its assignments (listings join, "
                        "delistings leave)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the plan as JSON")
    out.add_argument("--symbols", action="store_true",
                     help="print the universe comma-separated (for SYMBOLS or "
                          "EXTRA_PARTITION_SYMBOLS: partitions before anything is captured)")
    p.add_argument("--config", help="config file (default config/system.yaml or $OFI_CVD_CONFIG)")


def format_plan(plan: ShardPlan, volumes: dict[str, float], max_symbols: int = 8) -> str:
    """The plan as a table (one line per shard)."""
    per = shard_volumes(plan, volumes)
    total = sum(per.values()) or 1.0
    lines = [f"{'shard':<10} {'symbols':>7} {'share':>8} {'streams/conn':>12}  symbols"]
    for name, syms in plan.shards.items():
        shown = ", ".join(syms[:max_symbols]) + (f", … (+{len(syms) - max_symbols})"
                                                 if len(syms) > max_symbols else "")
        lines.append(f"{name:<10} {len(syms):>7} {100 * per[name] / total:>7.1f}% "
                     f"{streams_per_connection(len(syms)):>12}  {shown}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    s = load_settings(args.config)
    n = check_value("--shards", args.shards, "capture.shards") if args.shards is not None \
        else s.capture_shards
    url = args.rest_base_url or s.rest_base_url
    check_value("--rest-base-url", url, "exchange.rest_base_url")
    previous = None
    if args.previous is not None:
        try:
            previous = ShardPlan.from_json(args.previous.read_text())
        except OSError as exc:
            print(f"ofi-cvd-harvest shards: {args.previous}: {exc.strerror}", file=sys.stderr)
            return 2
        if previous is None:
            print(f"ofi-cvd-harvest shards: {args.previous}: not a shard plan (want the output "
                  "of --json)", file=sys.stderr)
            return 2
    try:
        uni = fetch_universe(url, s.rest_weight_limit_per_min)
    except UniverseError as exc:
        print(f"ofi-cvd-harvest shards: {exc}", file=sys.stderr)
        return 1
    plan = plan_shards(uni.volumes, n, s.max_streams_per_connection, previous)
    if args.json:
        print(plan.to_json())
        return 0
    if args.symbols:
        print(",".join(plan.symbols()))
        return 0
    total = sum(uni.volumes.values())
    print(f"{len(uni.volumes)} TRADING perpetuals from {url}, 24 h quote volume "
          f"{total:,.0f} USDT, {len(plan.shards)} shards of at most {plan.room} symbols")
    for note in plan.notes + tuple(f"refused symbol name {b}" for b in uni.skipped):
        print(f"note: {note}")
    print(format_plan(plan, uni.volumes))
    return 0
