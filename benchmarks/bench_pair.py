"""Benchmark (issue 15): two captures at once on one simulator, A beside B, for effects smaller
than this machine's drift.

Why: on this shared 2-core VM the same capture reads 29 % of a core in one run and 38 % in the
next (the bare consumer 8–13 %), so a 10 % effect measured in alternating runs needs many pairs.
Here both sides receive the same frames from one simulator at the same time, each in its own
process (``bench_universe.py --capture``: the real ``Capture.run`` and its harness), and their
CPU is compared interval by interval: whatever slows the machine slows both. Then the bare
consumer runs twice at once the same way (A's and B's event loop), for the side-by-side ratio.

A side is an event loop and optionally another checkout (``--a-path``: put first on
``PYTHONPATH``, e.g. the code before a change, from ``git worktree add``):

    .venv/bin/python benchmarks/bench_pair.py --a-loop asyncio --b-loop uvloop
    .venv/bin/python benchmarks/bench_pair.py --a-path /tmp/old --a-loop asyncio --b-loop uvloop
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNIVERSE = HERE / "bench_universe.py"
sys.path.insert(0, str(HERE))
from universe_harness import pregen_block  # noqa: E402


def _env(path: str | None, loop: str) -> dict:
    env = dict(os.environ, BENCH_EVENT_LOOP=loop)
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _lines(p: subprocess.Popen) -> tuple[list[dict], dict]:
    rows, res = [], {}
    for line in p.stdout:
        if line.startswith("ROW "):
            rows.append(json.loads(line[4:]))
        elif line.startswith("RESULT "):
            res = json.loads(line[7:])
    p.wait(120)
    return rows, res


def run(args) -> dict:
    pregen_block(args.symbols, 60.0)   # generated (or loaded) before anything is timed
    sides = {"A": _env(args.a_path, args.a_loop), "B": _env(args.b_path, args.b_loop)}
    with tempfile.TemporaryDirectory() as d:
        portfile = os.path.join(d, "port")
        srv = subprocess.Popen([sys.executable, str(UNIVERSE), "--serve", str(args.symbols), "1",
                                portfile, "-1", "pregen", "60"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            while not os.path.exists(portfile) and srv.poll() is None:
                time.sleep(0.1)
            info = json.loads(Path(portfile).read_text())
            ws = f"ws://127.0.0.1:{info['port']}"
            seconds = args.sim_minutes * 60
            procs = {k: subprocess.Popen(
                [sys.executable, str(UNIVERSE), "--capture", str(args.symbols), "1", ws, "file",
                 str(seconds), str(args.warmup), "-1", str(args.interval)],
                stdout=subprocess.PIPE, text=True,
                env=dict(env, BENCH_WALL0_FILE=portfile + ".wall0")) for k, env in sides.items()}
            out = {k: _lines(p) for k, p in procs.items()}
            bare = {}
            if args.bare_seconds > 0:
                bp = {k: subprocess.Popen(
                    [sys.executable, str(UNIVERSE), "--bare", str(args.symbols), ws,
                     str(args.bare_seconds), str(args.warmup), "-1"],
                    stdout=subprocess.PIPE, text=True, env=env) for k, env in sides.items()}
                bare = {k: _lines(p)[1] for k, p in bp.items()}
        finally:
            srv.stdin.close()
            srv.wait(30)
    return {"rows": {k: v[0] for k, v in out.items()}, "res": {k: v[1] for k, v in out.items()},
            "bare": bare}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--sim-minutes", type=float, default=3.0, help="simulated (= wall) minutes")
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--interval", type=float, default=20.0)
    ap.add_argument("--bare-seconds", type=float, default=30.0)
    for side in "ab":
        ap.add_argument(f"--{side}-loop", choices=("asyncio", "uvloop"), default="asyncio")
        ap.add_argument(f"--{side}-path", help="another checkout, first on PYTHONPATH")
    args = ap.parse_args()
    label = {k: f"{getattr(args, k.lower() + '_loop')}"
                + (f" @ {getattr(args, k.lower() + '_path')}" if getattr(args, k.lower() + "_path")
                   else "") for k in "AB"}
    print(f"{args.symbols} symbols, {args.sim_minutes:g} min at the real rate, A = {label['A']}, "
          f"B = {label['B']}; load {os.getloadavg()[0]:.2f}", flush=True)
    r = run(args)
    ra, rb = r["rows"]["A"], r["rows"]["B"]
    ratios = []
    print("interval   A CPU %   B CPU %   B / A")
    for a, b in zip(ra, rb):
        ratios.append(b["cpu_pct"] / a["cpu_pct"])
        print(f"t={a['t']:4d}s   {a['cpu_pct']:6.1f}    {b['cpu_pct']:6.1f}    {ratios[-1]:.3f}")
    a, b = r["res"]["A"], r["res"]["B"]
    print(f"whole run: A {a['cpu_pct']:.1f} %, B {b['cpu_pct']:.1f} % of a core at "
          f"{a['msg_s']:,.0f} / {b['msg_s']:,.0f} msg/s: B / A = {b['cpu_pct'] / a['cpu_pct']:.3f} "
          f"(median of intervals {statistics.median(ratios):.3f}); p99 receipt -> buffered "
          f"{a['combined_p99_ms']:.2f} / {b['combined_p99_ms']:.2f} ms; gaps "
          f"{a['trade_gaps'] + a['book_gaps']} / {b['trade_gaps'] + b['book_gaps']}")
    if r["bare"]:
        ba, bb = r["bare"]["A"], r["bare"]["B"]
        print(f"bare consumers at once: A's loop {ba['cpu_pct']:.1f} %, B's loop {bb['cpu_pct']:.1f} %"
              f" at {ba['msg_s']:,.0f} msg/s; capture / bare (messages per CPU-second): A "
              f"{ba['cpu_pct'] / a['cpu_pct'] * a['msg_s'] / ba['msg_s']:.2f}x, B "
              f"{bb['cpu_pct'] / b['cpu_pct'] * b['msg_s'] / bb['msg_s']:.2f}x")
    print("RESULT " + json.dumps({"A": a, "B": b, "bare": r["bare"], "label": label,
                                  "interval_ratios": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
