"""Benchmark (issue 21): a disconnect storm over the universe, with and without redundant
connections.

The simulator (seeded synthetic market, ``--symbols`` names at their realistic rates, faults
``disconnect`` and ``drop`` per message and connection) runs in this process's thread; the real
capture runs as the CLI in a child process (``--redundancy 1`` and/or ``2``) for ``--seconds``
and is then stopped with SIGTERM. Reported per run: gaps announced, trades healed through REST,
ids owed at exit (checkpoint ranges) and the REST pages / minutes they need at the budget,
trades missing against the simulator's ground truth (BTCUSDT, ETHUSDT, and all), CPU seconds
and peak RSS of the capture process, messages received, and the stop latency (SIGTERM to exit).
With ``--heal-seconds`` the storm is then switched off and captures restart until the debt is
paid (or that time passes): the time to heal and what is still missing.

    .venv/bin/python benchmarks/bench_storm.py [--symbols 300] [--seconds 180] \
        [--faults disconnect=0.0003,drop=0.0003] [--redundancy 1 2] [--heal-seconds 0]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofi_cvd_harvest.capture import checkpoint as ckpt  # noqa: E402
from ofi_cvd_harvest.protocol.idranges import IdRanges  # noqa: E402
from ofi_cvd_harvest.sim.faults import FaultConfig  # noqa: E402
from ofi_cvd_harvest.sim.server import SimulatorThread  # noqa: E402


def symbols_for(n: int) -> list[str]:
    base = ["BTCUSDT", "ETHUSDT"]
    return (base + [f"S{i:03d}USDT" for i in range(max(0, n - 2))])[:n]


def _capture(sim, tmp: Path, syms: list[str], redundancy: int, seconds: float,
             sigterm_after: float | None) -> dict:
    cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", ",".join(syms),
           "--run-seconds", str(seconds), "--data-dir", str(tmp / "data"),
           "--artifacts-dir", str(tmp / "art"), "--ws-base-url", sim.ws_url,
           "--rest-base-url", sim.rest_url, "--prometheus-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WS_REDUNDANCY": str(redundancy)}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    stop_sent = None
    if sigterm_after is not None:
        try:
            proc.wait(sigterm_after)
        except subprocess.TimeoutExpired:
            stop_sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
    _, status, ru = os.wait4(proc.pid, 0)
    end = time.monotonic()
    return {"rc": os.waitstatus_to_exitcode(status), "wall_s": round(end - t0, 1),
            "stop_latency_s": round(end - stop_sent, 1) if stop_sent else None,
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 1), "peak_rss_mb": round(ru.ru_maxrss / 1024)}


def _figures(sim, tmp: Path, syms: list[str], budget: int = 1920) -> dict:
    data = tmp / "data"
    ops_files = list(data.glob("raw/date=*/symbol=*/stream=ops/*.parquet"))
    ops = pl.concat([pl.read_parquet(f, columns=["event_type", "meta_json"]) for f in ops_files])
    det = ops.filter(pl.col("event_type") == "gap_detected")["meta_json"]
    gaps = sum(orjson.loads(m).get("gaps", 1) for m in det)
    cp = ckpt.load(ckpt.path_in(tmp / "art"))
    owed_ids = owed_ranges = pages = 0
    for c in cp.symbols.values():
        r = IdRanges()
        for a, b in c.open_gaps:
            r.add(a, b)
        owed_ids += r.total
        owed_ranges += len(r)
        pages += r.pages(1000)
    healed = missing = captured = 0
    per = {}
    for sym in syms:
        files = list(data.glob(f"raw/date=*/symbol={sym}/stream=agg_trade/*.parquet"))
        if not files:
            continue
        t = pl.concat([pl.read_parquet(f, columns=["agg_trade_id", "source"]) for f in files])
        have = set(t["agg_trade_id"].to_list())
        truth = [int(r["agg_trade_id"]) for r in sim.ground_truth(sym)]
        lo, hi = min(have), max(have)
        miss = sum(1 for i in truth if lo <= i <= hi and i not in have)
        missing += miss
        captured += len(have)
        healed += int((t["source"] == "rest").sum())
        if sym in ("BTCUSDT", "ETHUSDT"):
            per[sym] = {"missing": miss, "of": sum(1 for i in truth if lo <= i <= hi)}
    return {"gap_rows": len(det), "gaps": gaps, "healed_trades": healed, "captured": captured,
            "missing_all": missing, **per, "owed_ids_at_exit": owed_ids,
            "owed_ranges_at_exit": owed_ranges, "owed_pages": pages,
            "heal_eta_min": round(pages * 20 / budget, 1),
            "checkpoint_bytes": ckpt.path_in(tmp / "art").stat().st_size}


def _heal(sim, tmp: Path, syms: list[str], redundancy: int, limit: float) -> dict:
    """One capture without faults, stopped (SIGTERM) once two checkpoints in a row owe
    nothing (rotation every 5 s): the debt and the restart's own downtime are paid."""
    cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", ",".join(syms),
           "--run-seconds", str(limit), "--data-dir", str(tmp / "data"),
           "--artifacts-dir", str(tmp / "art"), "--ws-base-url", sim.ws_url,
           "--rest-base-url", sim.rest_url, "--prometheus-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WS_REDUNDANCY": str(redundancy),
           "PARQUET_ROTATE_SEC": "5"}
    path = ckpt.path_in(tmp / "art")
    t0, wall0 = time.monotonic(), time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    clean, paid = 0, None
    while proc.poll() is None:
        time.sleep(2.5)
        try:
            cp = ckpt.load(path)
        except ValueError:
            continue
        if cp is None or cp.updated_ms < (wall0 + 10) * 1000:
            continue
        clean = clean + 1 if not any(c.open_gaps for c in cp.symbols.values()) else 0
        if clean >= 2 and paid is None:
            paid = time.monotonic() - t0
            proc.send_signal(signal.SIGTERM)
    proc.wait()
    return {"heal_s": round(paid) if paid is not None else None,
            "heal_limit_s": limit, "heal_rc": proc.returncode}


def run(args, redundancy: int) -> dict:
    syms = symbols_for(args.symbols)
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as d, \
            SimulatorThread(syms, seed=args.seed, speed=args.speed, faults=args.faults) as sim:
        tmp = Path(d)
        proc = _capture(sim, tmp, syms, redundancy, args.seconds + 3600, args.seconds)
        out = {"redundancy": redundancy, **proc, **_figures(sim, tmp, syms),
               "sim": {k: v for k, v in sim.stats.items() if k.startswith("fault_") and v}}
        print(json.dumps(out), flush=True)
        if args.heal_seconds > 0:
            sim.sim.faults = FaultConfig()        # the storm is over for new connections
            out["after_heal"] = healed = {**_heal(sim, tmp, syms, redundancy, args.heal_seconds),
                                          **_figures(sim, tmp, syms)}
            print(json.dumps({"redundancy": redundancy, "after_heal": healed}), flush=True)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--faults", default="disconnect=0.0003,drop=0.0003")
    ap.add_argument("--redundancy", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--heal-seconds", type=float, default=0.0)
    args = ap.parse_args()
    for r in args.redundancy:
        run(args, r)


if __name__ == "__main__":
    main()
