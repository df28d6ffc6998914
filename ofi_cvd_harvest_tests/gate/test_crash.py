"""SIGKILL between staging and publishing (``ofi-cvd-harvest derive`` as a real process).

The gate pauses at a named point when ``OFI_CVD_GATE_PAUSE_AT`` says so (test hook only); the
test kills the process there. Whatever the point, every published table is whole and either
the old or the new version; after the next gate call (which rolls an unfinished publish
forward and removes a dead run's staging) the partition is all new and staging is empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofi_cvd_harvest.gate.publish import PAUSE_ENV, PAUSE_FILE_ENV, recover
from ofi_cvd_harvest.gate.run import gate_partition
from ofi_cvd_harvest.settings import load_settings
from ofi_cvd_harvest.storage.fs import Storage

from ..orchestration.rawfixtures import write_raw
from .rawedit import KINDS, rescale, table_bytes

DATE, SYM = "2024-07-19", "BTCUSDT"
ROOT = Path(__file__).resolve().parents[2]


def gate(data):
    return gate_partition(Storage(data), load_settings(env={}, data_dir=data), DATE, SYM, run="test")


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Raw data whose published version is OLD, with raw already changed so that a derivation
    gives NEW; and NEW's bytes, derived in a separate copy."""
    base = tmp_path_factory.mktemp("versions")
    data = base / "data"
    write_raw(data, DATE, SYM, minutes=4)
    assert gate(data).status == "published"
    old = table_bytes(data, DATE, SYM)
    rescale(data, DATE, SYM)
    copy = base / "copy"
    shutil.copytree(data / "raw", copy / "raw")
    assert gate(copy).status == "published"
    new = table_bytes(copy, DATE, SYM)
    assert all(old[k] != new[k] for k in KINDS)   # every table changes: a mix would show
    return data, old, new


def _kill_at(data: Path, point: str, tmp_path: Path) -> None:
    marker = tmp_path / f"paused-{point.replace(':', '-')}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), PAUSE_ENV: point, PAUSE_FILE_ENV: str(marker)}
    proc = subprocess.Popen([sys.executable, "-m", "ofi_cvd_harvest.cli", "derive", "--data-dir",
                             str(data), "--date", DATE, "--symbols", SYM],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "the derivation never reached " + point
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _whole_tables(data: Path) -> list[str]:
    assert not list((data / "ofi_cvd").rglob("*.tmp"))
    assert sorted(p.parent.name for p in (data / "ofi_cvd").rglob("*.parquet")) == \
        sorted(f"kind={k}" for k in KINDS)
    return sorted(str(p) for p in (data / "ofi_cvd").rglob("*"))


# point -> the tables already new when the process dies (publishing order: prices, ofi, cvd, ...)
POINTS = {"staged": [], "journal": [], "moved:ofi": ["prices", "ofi"], "moved:events": KINDS}


@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_leaves_old_or_new_per_table_then_all_new(versions, point, tmp_path):
    src, old, new = versions
    data = tmp_path / "data"
    shutil.copytree(src, data)
    _kill_at(data, point, tmp_path)
    _whole_tables(data)
    now = table_bytes(data, DATE, SYM)
    state = {k: "new" if now[k] == new[k] else "old" if now[k] == old[k] else "other" for k in KINDS}
    assert state == {k: "new" if k in POINTS[point] else "old" for k in KINDS}
    staged = list((data / ".staging").rglob("*.parquet"))
    assert staged or point == "moved:events"   # the dead run's tables are still staged
    # the next gate call anywhere on the data root finishes or discards the dead run's work
    done = recover(data)
    if point.startswith("moved") or point == "journal":
        assert done["rolled_forward"] == [f"{DATE}|{SYM}"]
        assert table_bytes(data, DATE, SYM) == new          # all five new, none old
    else:
        assert done["rolled_forward"] == [] and len(done["removed"]) == 1
        assert table_bytes(data, DATE, SYM) == old          # all five still old
    assert not list((data / ".staging").rglob("*.parquet"))
    assert not list((data / ".staging").glob("date=*"))
    # and a new run publishes the new version
    assert gate(data).status == "published" and table_bytes(data, DATE, SYM) == new
