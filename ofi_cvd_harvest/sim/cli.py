"""``ofi-cvd-harvest simulate``: run the local Binance USDT-M exchange until SIGINT/SIGTERM.

Prints the WebSocket and REST base URLs once ``/fapi/v1/time`` answers (one line each, so a
script can parse them), and on exit optionally dumps every generated trade (``--dump-trades``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
from typing import Any

from .faults import FaultConfig

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")


def _symbols(text: str) -> list[str]:
    syms = [s.strip().upper() for s in text.split(",") if s.strip()]
    bad = [s for s in syms if not _SYMBOL_RE.match(s)]
    if not syms or bad:
        raise argparse.ArgumentTypeError(f"invalid symbol list {text!r} (want e.g. BTCUSDT,ETHUSDT)")
    return syms


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return v


def _faults(text: str) -> FaultConfig:
    try:
        return FaultConfig.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _statuses(text: str) -> dict[str, str]:
    from .listings import parse_statuses
    try:
        return parse_statuses(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="loopback port (0 = ephemeral)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--symbols", type=_symbols, default=["BTCUSDT", "ETHUSDT"],
                   help="comma-separated symbols; unknown names get a synthetic market")
    p.add_argument("--seed", type=int, default=0, help="market and fault RNG seed")
    p.add_argument("--status", type=_statuses, default={}, metavar="SYM=STATUS,…",
                   help="exchangeInfo status of some symbols, e.g. SOLUSDT=PENDING_TRADING "
                        "(default TRADING; docs/simulator.md \"Universe\")")
    p.add_argument("--delivery", type=_symbols, default=[], metavar="SYM,…",
                   help="also list a quarterly delivery contract of these symbols "
                        "(not a perpetual: the capture shards leave it out)")
    p.add_argument("--speed", type=_positive, default=1.0,
                   help="simulated seconds per wall second (60 = one hour per minute)")
    p.add_argument("--start-ms", type=int, default=None,
                   help="simulated clock start (ms epoch; default now) — fixes timestamps too")
    p.add_argument("--faults", type=_faults, default=FaultConfig(),
                   help='e.g. "drop=0.001,duplicate=0.001,disconnect=0.0005,cut=60,http429=0.01" '
                        "(see docs/simulator.md)")
    p.add_argument("--ping-interval", type=_positive, default=180.0, help="server ping (s)")
    p.add_argument("--ping-timeout", type=_positive, default=600.0, help="close if no pong (s)")
    p.add_argument("--max-conn-age", type=_positive, default=86400.0,
                   help="close every connection after this many wall seconds (24 h)")
    p.add_argument("--weight-limit", type=int, default=2400, help="REST request weight per minute")
    p.add_argument("--replay", default=None,
                   help="serve a recording instead of the synthetic market (a file, directory, glob, or our raw partitions in an s3://bucket/prefix lake)")
    p.add_argument("--dump-trades", default=None, metavar="PATH",
                   help="write every generated trade to this Parquet file at exit")
    study = p.add_mutually_exclusive_group()
    study.add_argument("--planted-signal", type=_positive, default=None, metavar="SECONDS",
                       help="study market: book imbalance leads trade direction and price by "
                            "SECONDS (docs/research.md)")
    study.add_argument("--null-market", action="store_true",
                       help="study market: no flow persistence, trade prices an independent "
                            "random walk (docs/research.md)")
    p.add_argument("--run-seconds", type=_positive, default=None,
                   help="stop after this many wall seconds (default: until interrupted)")


def _study_source(args: argparse.Namespace) -> Any:
    """The synthetic market of a study option (None: the default market)."""
    if args.planted_signal is None and not args.null_market:
        return None
    from .market import StudyMode, SyntheticMarket
    study = StudyMode(planted_sec=args.planted_signal, null_market=args.null_market)
    return SyntheticMarket(args.symbols, seed=args.seed, speed=args.speed,
                           start_ms=args.start_ms, study=study)


def _replay_source(path: str, speed: float) -> Any:
    from .replay import open_replay
    return open_replay(path, speed)


async def _replay_progress(source: Any, stop: asyncio.Event, every_sec: float = 1.0) -> None:
    """Where a replay stands, on stderr (``ofi_cvd_harvest.progress``: one line redrawn on a
    terminal, a plain line every 10 s otherwise, and the last): a recording replayed at its
    original speed runs for hours, and the replay only starts with the first subscription."""
    from ..progress import Progress
    with Progress(source.total, "messages", "replay") as p:
        while True:
            if source.position > p.done:
                p.step(n=source.position - p.done)
            if source.finished or stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_sec)


async def _serve(args: argparse.Namespace) -> int:
    from .listings import Listings
    from .server import Simulator
    if args.replay and (args.planted_signal is not None or args.null_market):
        print("ofi-cvd-harvest simulate: --replay serves a recording; it cannot be combined "
              "with --planted-signal or --null-market", file=sys.stderr)
        return 2
    try:
        source = _replay_source(args.replay, args.speed) if args.replay else _study_source(args)
    except ValueError as exc:
        print(f"ofi-cvd-harvest simulate: {exc}", file=sys.stderr)
        return 2
    sim = Simulator(args.symbols, seed=args.seed, speed=args.speed, faults=args.faults,
                    port=args.port, host=args.host, source=source,
                    ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                    max_conn_age=args.max_conn_age, weight_limit=args.weight_limit,
                    start_ms=args.start_ms,
                    listings=Listings(args.status, args.delivery, seed=args.seed))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await sim.start()
    print(f"ws_url={sim.ws_url}", flush=True)
    print(f"rest_url={sim.rest_url}", flush=True)
    print(f"symbols={','.join(sim.source.symbols)} seed={args.seed} speed={args.speed:g}",
          flush=True)
    watch = (asyncio.create_task(_replay_progress(source, stop))
             if args.replay and source is not None else None)
    try:
        if args.run_seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.run_seconds)
        else:
            await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await sim.stop()
        if args.dump_trades:
            from .dump import dump_trades
            n = dump_trades(sim, args.dump_trades)
            print(f"dumped {n} trades to {args.dump_trades}", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        print(f"ofi-cvd-harvest simulate: {exc}", file=sys.stderr)
        return 1
