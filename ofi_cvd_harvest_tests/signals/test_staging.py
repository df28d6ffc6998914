"""One partition's computation shared between processes through the disk (signals/staging.py).

What a multiprocess Dagster run relies on: processes deriving the same partition compute it
once; a staged table is the same table (and the same final file) as a fresh computation; a
changed raw file, other settings or other code are never served from staging; a damaged or
partial staged file is not used; staging is gone once the five kinds are written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import time

import polars as pl
import pytest

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals import derive as D
from ofi_cvd_harvest.signals import staging
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.storage.fs import Storage

from .helpers import D0, DAY, SYM
from .test_derive import H, store, trades

S = Settings()
KINDS = list(schemas.DERIVED_KINDS)


@pytest.fixture
def st(tmp_path) -> Storage:
    D.clear_cache()
    yield store(tmp_path / "data", D0 - 8 * H, D0 + H)
    D.clear_cache()


@pytest.fixture
def derive_log(caplog):
    caplog.set_level(logging.INFO, logger="ofi_cvd_harvest.signals")

    def lines(what: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if what in r.getMessage()]
    return lines


def staged_dirs(st: Storage) -> list:
    d = staging.partition_dir(st, DAY, SYM)
    return sorted(p for p in d.glob("*") if p.is_dir()) if d.is_dir() else []


def fresh(st: Storage, settings: Settings = S) -> dict[str, pl.DataFrame]:
    return D.compute(st, settings, DAY, SYM)


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_staged_tables_equal_a_fresh_compute_and_give_identical_files(st, tmp_path, derive_log):
    D.derive_kind("ofi", st, S, DAY, SYM)            # computes, stages the five tables
    assert len(derive_log("computed from")) == 1
    (d,) = staged_dirs(st)
    assert sorted(p.name for p in d.glob("*.parquet")) == sorted(f"{k}.parquet" for k in KINDS)
    D.clear_cache()                                  # as another process: no memo
    expected = fresh(st)
    other = Storage(tmp_path / "fresh")              # where the fresh tables are written
    for kind in KINDS:
        got = D.derive_kind(kind, st, S, DAY, SYM)
        assert got.equals(expected[kind]), kind
        assert got.schema == expected[kind].schema
        assert sha(D.write_kind(st, DAY, SYM, kind, got)) == \
            sha(D.write_kind(other, DAY, SYM, kind, expected[kind])), kind
    assert len(derive_log("read from staging")) == len(KINDS)
    assert len(derive_log("computed from")) == 1     # never recomputed
    # the five kinds are written: nothing staged is left, lock file included
    assert not (tmp_path / "data" / staging.STAGED_DIR).exists()


SCRIPT = """
import logging, os, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals.derive import derive_kind
from ofi_cvd_harvest.storage.fs import Storage
root, kind, go, out, date, symbol = sys.argv[1:7]
storage = Storage(root)
open(out + ".ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
derive_kind(kind, storage, Settings(), date, symbol).write_ipc(out)
"""


def test_two_processes_compute_the_partition_once(st, tmp_path):
    go = tmp_path / "go"
    outs = {k: tmp_path / f"{k}.arrow" for k in ("prices", "fusion")}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, st.root, k, str(go), str(out), DAY, SYM],
                              stderr=subprocess.PIPE, text=True) for k, out in outs.items()]
    try:
        deadline = time.time() + 120
        while not all(os.path.exists(f"{o}.ready") for o in outs.values()):
            assert time.time() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        go.touch()                                   # both derive at the same moment
        logs = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], logs
    text = "".join(logs)
    assert text.count("computed from") == 1, text
    assert text.count("read from staging") == 1, text
    expected = fresh(st)
    for kind, out in outs.items():
        assert pl.read_ipc(out).equals(expected[kind]), kind


def test_added_or_touched_raw_file_invalidates_the_staged_result(st, derive_log):
    first = D.derive_kind("prices", st, S, DAY, SYM)
    D.clear_cache()
    sy.write_raw(st, SYM, "agg_trade", trades(D0 + H, D0 + H + 60_000), rotate_ms=600_000)
    # same run as the upstream tables: the staged snapshot is reused (rows only added)
    same_run = D.derive_kind("cvd", st, S, DAY, SYM, upstream={})
    assert len(same_run) == len(first) and len(derive_log("computed from")) == 1
    # a plain call reflects the raw files as they are now: recomputed, re-staged
    now = D.derive_kind("prices", st, S, DAY, SYM)
    assert len(now) > len(first) and len(derive_log("computed from")) == 2
    assert now.equals(fresh(st)["prices"])
    assert len(staged_dirs(st)) == 1                 # the stale staged result was removed
    # a rewritten raw file (same name, new mtime) invalidates too
    D.clear_cache()
    raw = st.list_files(f"raw/date={DAY}/symbol={SYM}/stream=book")[0]
    os.utime(raw, ns=(time.time_ns(), time.time_ns() + 10**9))
    D.derive_kind("ofi", st, S, DAY, SYM)
    assert len(derive_log("computed from")) == 3


def test_other_settings_or_code_are_not_served_from_staging(st, derive_log):
    D.derive_kind("cvd", st, S, DAY, SYM)
    D.clear_cache()
    other = S.replace(signals=dataclasses.replace(S.signals, half_life_sec=300.0))
    got = D.derive_kind("cvd", st, other, DAY, SYM)
    assert len(derive_log("computed from")) == 2
    assert got.equals(fresh(st, other)["cvd"]) and not got.equals(fresh(st)["cvd"])
    # a result staged by other code (e.g. before a formula fix) is not used either
    D.clear_cache()
    (d,) = staged_dirs(st)
    manifest = json.loads((d / staging.MANIFEST).read_text())
    manifest["identity"]["code"] = "0" * 16
    (d / staging.MANIFEST).write_text(json.dumps(manifest))
    D.derive_kind("cvd", st, other, DAY, SYM)
    assert len(derive_log("computed from")) == 3
    (d2,) = staged_dirs(st)
    assert json.loads((d2 / staging.MANIFEST).read_text())["identity"] == staging.identity(other.signals)


@pytest.mark.parametrize("damage", ["truncated", "flipped_bytes", "missing_manifest", "bad_manifest"])
def test_damaged_staged_file_is_not_used(st, derive_log, damage):
    D.derive_kind("prices", st, S, DAY, SYM)
    D.clear_cache()
    (d,) = staged_dirs(st)
    path = d / "cvd.parquet"
    data = path.read_bytes()
    if damage == "truncated":                        # e.g. a crash before the data reached disk
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped_bytes":                  # same size, damaged page data
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0x5A for b in data[mid:mid + 64]) + data[mid + 64:])
    elif damage == "missing_manifest":
        (d / staging.MANIFEST).unlink()
    else:
        (d / staging.MANIFEST).write_text('{"format": 1, "identity"')
    got = D.derive_kind("cvd", st, S, DAY, SYM)
    assert got.equals(fresh(st)["cvd"])
    assert len(derive_log("computed from")) == 2     # recomputed instead
    assert len(derive_log("read from staging")) == 0


def test_staging_cleaned_after_the_five_kinds_are_written(st, tmp_path):
    for i, kind in enumerate(KINDS):
        if i == 1:
            D.clear_cache()                          # the other kinds come from staging
        D.write_kind(st, DAY, SYM, kind, D.derive_kind(kind, st, S, DAY, SYM))
        left = sorted(p.name for d in staged_dirs(st) for p in d.glob("*.parquet"))
        assert left == sorted(f"{k}.parquet" for k in KINDS[i + 1:])
    assert not (tmp_path / "data" / staging.STAGED_DIR).exists()
    assert [len(st.list_files(f"ofi_cvd/date={DAY}/symbol={SYM}/kind={k}")) for k in KINDS] == [1] * 5


def test_unfinished_staging_is_swept_after_the_ttl_unless_in_use(st, tmp_path):
    D.derive_kind("prices", st, S, DAY, SYM)          # a run that stopped after one step
    d = staging.partition_dir(st, DAY, SYM)
    (d / f"{staging.TMP_PREFIX}crashed-writer").mkdir()
    assert staging.sweep(st) == []                   # young: kept
    later = time.time() + staging.TTL_SEC + 60
    with staging.open_stage(st, DAY, SYM):          # a process is using it: kept
        assert staging.sweep(st, now=later) == []
    assert staging.sweep(st, now=later) == [str(d)]
    assert not (tmp_path / "data" / staging.STAGED_DIR).exists()


def test_in_process_derivations_stage_nothing(st, tmp_path, derive_log):
    D.derive_all(st, S, DAY, SYM)
    for kind in KINDS:
        D.write_kind(st, DAY, SYM, kind, D.derive_kind(kind, st, S, DAY, SYM, share=False))
    assert len(derive_log("computed from")) == 1
    assert not (tmp_path / "data" / staging.STAGED_DIR).exists()
