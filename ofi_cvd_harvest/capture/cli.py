"""``ofi-cvd-harvest capture``: run the capture from the command line.

SIGINT/SIGTERM stop it gracefully (flush, finalise, checkpoint). Exit codes (capture/outcome.py,
docs/capture.md "Exit codes"): 0 ok, 1 fatal capture error (e.g. error budget exceeded),
2 bad settings / missing component, 3 the shard's lease is held by another process (one line
naming it), 4 ended with rows it could not write (disk full or read-only data dir until the end;
the rows per table are printed), 5 the shard's lease was lost while capturing (fencing).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from ..settings import check_value, load_settings
from . import eventloop
from ..storage.objectstore import data_root


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbols", help="comma-separated symbols (default: settings SYMBOLS)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run-seconds", type=float, help="run for N seconds")
    g.add_argument("--run-hours", type=float, help="run for H hours (default: RUN_HOURS)")
    p.add_argument("--data-dir", help="data root (default: DATA_DIR / config)")
    p.add_argument("--artifacts-dir", help="artifacts root (default: ARTIFACTS_DIR / config)")
    p.add_argument("--ws-base-url", help="WebSocket base, e.g. ws://127.0.0.1:PORT")
    p.add_argument("--rest-base-url", help="REST base, e.g. http://127.0.0.1:PORT")
    p.add_argument("--config", help="config file (default config/system.yaml)")
    p.add_argument("--prometheus-port", type=int, help="metrics port (0 disables)")
    p.add_argument("--book-source", choices=("partial", "diff"), help="book stream mode")
    p.add_argument("--shard", help="capture shard name (CAPTURE_SHARD); with a lease URL the "
                   "capture holds the shard's lease (docs/capture.md \"Leases\")")
    p.add_argument("--lease-url", help="postgresql+psycopg2://… or s3://bucket/prefix "
                   "(default: CAPTURE_LEASE_URL)")
    p.add_argument("--precheck-only", action="store_true",
                   help="capture for precheck_minutes, evaluate the DoD, exit non-zero on failure")


def settings_from_args(args: argparse.Namespace):
    """Settings with the flags over file and environment; a bad flag is a ``SettingsError``
    naming it (exit 2), like a bad setting."""
    if args.run_seconds is not None:   # positive and finite: nan would run forever
        check_value("--run-seconds", args.run_seconds, "run_hours")
    if args.run_hours is not None:
        check_value("--run-hours", args.run_hours, "run_hours")
    over: dict = {}
    if args.symbols:
        over["symbols"] = tuple(x.strip().upper() for x in args.symbols.split(",") if x.strip())
    if args.run_hours is not None:
        over["run_hours"] = args.run_hours
    if args.data_dir:
        over["data_dir"] = data_root(args.data_dir)
    if args.artifacts_dir:
        over["artifacts_dir"] = Path(args.artifacts_dir)
    if args.ws_base_url:
        over["ws_base_url"] = args.ws_base_url
    if args.rest_base_url:
        over["rest_base_url"] = args.rest_base_url
    if args.prometheus_port is not None:
        over["prometheus_port"] = args.prometheus_port
    if args.book_source:
        over["book_source"] = args.book_source
    if getattr(args, "shard", None) is not None:
        over["shard"] = check_value("--shard", args.shard.strip(), "capture.shard")
    if getattr(args, "lease_url", None) is not None:
        over["lease_url"] = check_value("--lease-url", args.lease_url.strip(), "capture.lease_url")
    return load_settings(getattr(args, "config", None), **over)


def run(args: argparse.Namespace) -> int:
    from ..universe.local import shard_local
    settings = shard_local(settings_from_args(args))   # the op's rule: artifacts/shards/<shard>
    from .lease import LeaseLost, ShardHeld
    if args.precheck_only:   # an application flow above capture, gate and dq (docs/dq.md, "Precheck")
        from ..precheck import run_precheck
        from .outcome import EXIT_SHARD_HELD
        try:
            return run_precheck(settings)
        except ShardHeld as exc:
            print(f"ofi-cvd-harvest capture: {exc}", file=sys.stderr)
            return EXIT_SHARD_HELD
    from .outcome import (EXIT_FATAL, EXIT_LEASE_LOST, EXIT_OK, EXIT_SHARD_HELD, EXIT_UNWRITTEN,
                          unwritten_message)
    from .runner import CaptureError, run_capture

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console = logging.getLogger("ofi_cvd_harvest.cli.capture")
        console.propagate = False
        if not console.handlers:   # the run log gets everything; the terminal gets it too
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            console.addHandler(h)
        console.setLevel(settings.log_level)
        try:
            summary = await run_capture(settings, run_seconds=args.run_seconds, stop=stop,
                                        log=console)
        except ShardHeld as exc:   # before anything was written: one line naming the holder
            print(f"ofi-cvd-harvest capture: {exc}", file=sys.stderr)
            return EXIT_SHARD_HELD
        except LeaseLost as exc:   # files finalised; the next holder heals the rest
            print(f"ofi-cvd-harvest capture: {exc}", file=sys.stderr)
            return EXIT_LEASE_LOST
        except CaptureError as exc:
            print(f"ofi-cvd-harvest capture: {exc}", file=sys.stderr)
            return EXIT_FATAL
        for sym, s in summary.symbols.items():
            print(f"{sym}: trades={s.trades_written} (ws={s.trades_ws}, healed={s.trades_healed}) "
                  f"duplicates={s.duplicates} book_rows={s.book_rows} book_gaps={s.book_gaps} "
                  f"trade_gaps={s.trade_gaps_detected} open_gaps={s.trade_gaps_unhealed}")
        print(f"files={summary.files_written} write_errors={summary.write_errors} "
              f"decode_errors={sum(summary.decode_errors.values())} "
              f"data={settings.data_dir} log={summary.log_path}")
        lost = unwritten_message(summary.unwritten)
        if lost:
            print(f"ofi-cvd-harvest capture: {lost}", file=sys.stderr)
            return EXIT_UNWRITTEN
        return EXIT_OK

    # our own process: park start-up objects (modules, settings) outside the cyclic GC so its
    # full collections during a 72 h run only scan what the capture itself allocates
    gc.freeze()
    return eventloop.run(main(), settings.event_loop)
