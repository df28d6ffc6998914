"""A kill inside a rotation, after the files were written and before the checkpoint is saved
(issue 21, found by ``test_fault_drill_short`` under load): the segments must still be there,
so the restart recovers them against the final files, re-derives the holes that were open at
the kill and heals them — against the simulator's ground truth nothing is missing.

The kill is real (``os._exit`` in a capture subprocess, like SIGKILL: no finally, no flush),
placed exactly by replacing ``checkpoint.save`` in that process only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ofi_cvd_harvest.capture import checkpoint as ckpt

from .rawcheck import assert_trades_complete, no_temp_files, read, truth_ids

ROOT = Path(__file__).resolve().parents[2]
SYMS = ("BTCUSDT", "ETHUSDT")
KILL_AT_CHECKPOINT = (
    "import os, sys\n"
    "from ofi_cvd_harvest.capture import checkpoint\n"
    "checkpoint.save = lambda *a, **k: os._exit(9)   # the first checkpoint of a rotation\n"
    "from ofi_cvd_harvest.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def _args(tmp: Path, sim, seconds: float) -> list[str]:
    return ["capture", "--symbols", ",".join(SYMS), "--run-seconds", str(seconds),
            "--data-dir", str(tmp / "data"), "--artifacts-dir", str(tmp / "art"),
            "--ws-base-url", sim.ws_url, "--rest-base-url", sim.rest_url,
            "--prometheus-port", "0"]


def test_kill_between_files_and_checkpoint_loses_nothing(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=41, speed=5.0, faults="drop=0.03")
    env = {**os.environ, "PARQUET_ROTATE_SEC": "2", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILL_AT_CHECKPOINT, *_args(tmp_path, sim, 60)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert not ckpt.path_in(tmp_path / "art").exists()          # killed before the first one
    segs = list((tmp_path / "data" / "raw" / "_segments").glob("*.arrows"))
    assert segs, "the written files' segments must outlive a kill before the checkpoint"
    assert len(read(tmp_path / "data", "agg_trade")) > 0          # and the files were written
    done = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli",
                           *_args(tmp_path, sim, 6)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(not c.open_gaps for c in ckpt.load(ckpt.path_in(tmp_path / "art")).symbols.values())
    for sym in SYMS:
        truth = truth_ids(sim, sym)
        trades = read(tmp_path / "data", "agg_trade", sym)
        assert_trades_complete(trades, truth)     # every id between the first and last, once
    assert sim.stats["fault_drop"] > 0
    no_temp_files(tmp_path / "data")
