"""Leftovers of crashes and full disks (issue 12 "Files"): stale temp files under ``ofi_cvd/``
and ``artifacts/state/`` are removed at start, and a capture on a disk that is really full
(a tiny tmpfs) stops without leaving empty segment files, then heals once space is back."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ofi_cvd_harvest.capture import checkpoint as ckpt
from ofi_cvd_harvest.capture.runner import run_capture_sync

from .miniexchange import MiniExchange
from .rawcheck import assert_trades_complete, capture_settings, read

SYMS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def ex():
    with MiniExchange(SYMS, seed=12) as x:
        yield x


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_stale_temp_files_are_removed_at_start(ex, tmp_path):
    s = capture_settings(tmp_path, ex.ws_url, ex.rest_url)
    derived = s.data_dir / "ofi_cvd" / "date=2024-07-19" / "symbol=BTCUSDT" / "kind=cvd"
    derived.mkdir(parents=True)
    old_derived = derived / "part-00000.parquet.1a2b3c4d.tmp"
    fresh_derived = derived / "part-00000.parquet.5e6f7a8b.tmp"     # a derive writing now
    state = s.artifacts_dir / "state"
    state.mkdir(parents=True)
    old_state = state / "checkpoint.json.4242.tmp"
    raw_tmp = s.data_dir / "raw" / "date=2024-07-19" / "part-1-000001.parquet.deadbeef.tmp"
    raw_tmp.parent.mkdir(parents=True)
    for p in (old_derived, fresh_derived, old_state, raw_tmp):
        p.write_bytes(b"half written")
    _age(old_derived, 2 * 3600)
    _age(old_state, 600)
    run_capture_sync(s, run_seconds=1.0)
    assert not old_derived.exists() and not old_state.exists() and not raw_tmp.exists()
    assert fresh_derived.exists()


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path) -> Path:
    """Fill the filesystem completely; returns the filler to delete."""
    filler = mnt / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_full_disk_leaves_no_empty_segments_and_heals_after(ex, tmp_path, tiny_disk):
    data = tiny_disk / "data"
    s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, data_dir=data, write_retries=1,
                         parquet_rotate_sec=1.0)
    (data / "raw" / "_segments").mkdir(parents=True)
    filler = fill(tiny_disk)
    summary = run_capture_sync(s, run_seconds=3)
    assert summary.rows_unwritten > 0 and summary.unwritten["agg_trade"]["rows"] > 0
    segs = list((data / "raw" / "_segments").glob("*"))
    assert [p for p in segs if p.stat().st_size == 0] == []          # no empty leftovers
    cp = ckpt.load(ckpt.path_in(s.artifacts_dir))                      # artifacts: other disk
    assert all(cp.symbols[sym].last_trade_id is not None for sym in SYMS)
    filler.unlink()                                                    # space is back
    summary = run_capture_sync(s, run_seconds=2.5)
    assert summary.rows_unwritten == 0
    for sym in SYMS:
        trades = read(data, "agg_trade", sym)
        assert_trades_complete(trades, ex.ground_truth_ids(sym))
        assert trades["agg_trade_id"].min() == cp.symbols[sym].last_trade_id + 1
    assert list((data / "raw" / "_segments").glob("*")) == []
