"""Damaged raw files (issue 12 "Files"): truncated, zero-byte, wrong-schema and bit-rotted files
are found by reading every page once (Parquet page CRCs), remembered, named, kept out of
derivation with an ops row, and fail the blocking ``raw_files_readable`` check."""

from __future__ import annotations

import json
import os

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest.cli import main
from ofi_cvd_harvest.dq.metrics import partition_metrics
from ofi_cvd_harvest.settings import load_settings
from ofi_cvd_harvest.signals.derive import derive_all
from ofi_cvd_harvest.storage import verify
from ofi_cvd_harvest.storage.fs import Storage

from ..damage import flip_inside_page
from . import dataset as ds

OTHER_DATE = "2024-07-18"


def damage(path, how: str) -> str:
    """Damage one raw trade file; returns the words its reason must contain."""
    if how == "zero":
        path.write_bytes(b"")
        return "unreadable footer"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "unreadable footer"
    if how == "bitrot":
        flip_inside_page(path)
        assert pq.read_metadata(path).num_rows > 0    # the footer alone looks fine
        return "CRC"
    if how == "wrong_schema":
        t = pq.read_table(path)
        t = t.set_column(t.schema.get_field_index("qty"), "qty", pc_cast_str(t.column("qty")))
        pq.write_table(t, path)
        return "wrong schema: qty string (expected double)"
    raise AssertionError(how)


def pc_cast_str(col):
    return col.cast(pa.string())


def trade_file(root, symbol="BTCUSDT", date=ds.DATE):
    return ds.raw_files(ds.Built(root, date, symbol, 0, 0, 0), "agg_trade")[0]


def ops_rows(root, symbol="BTCUSDT", date=ds.DATE) -> pl.DataFrame:
    files = ds.raw_files(ds.Built(root, date, symbol, 0, 0, 0), "ops")
    return pl.concat([pl.read_parquet(f) for f in files]).filter(
        pl.col("event_type") == verify.OPS_EVENT)


@pytest.mark.parametrize("how", ["zero", "truncated", "bitrot", "wrong_schema"])
def test_each_damage_is_named_remembered_and_recorded_once(data, how):
    storage = Storage(data)
    bad = trade_file(data)
    words = damage(bad, how)
    paths = storage.list_files("raw")
    v = verify.verify(storage, paths)
    assert list(v.damaged) == [str(bad)] and words in v.damaged[str(bad)]
    assert v.read_files == len(paths) and len(v.good) == len(paths) - 1
    rows = ops_rows(data)
    assert len(rows) == 1
    meta = json.loads(rows["meta_json"][0])
    assert meta["path"].endswith(bad.name) and meta["stream"] == "agg_trade" and words in meta["reason"]
    # remembered: nothing is read again, the damage is not recorded twice
    again = verify.verify(storage, storage.list_files("raw"))
    assert again.read_files == 1 and again.damaged == v.damaged   # only the new ops file
    assert verify.verify(storage, storage.list_files("raw")).read_files == 0
    assert len(ops_rows(data)) == 1
    # a file that changes (e.g. replaced by a good copy) is read again
    good = trade_file(data, "ETHUSDT")
    os.utime(good, ns=(good.stat().st_atime_ns, good.stat().st_mtime_ns + 1_000_000))
    assert verify.verify(storage, storage.list_files("raw")).read_files == 1


def test_bitrot_is_kept_out_of_derivation_with_an_ops_event(data):
    storage = Storage(data)
    settings = load_settings(None)
    clean = derive_all(storage, settings, ds.DATE, "BTCUSDT")["prices"]
    bad = trade_file(data)
    lost = pq.read_metadata(bad).num_rows
    flip_inside_page(bad)
    tables = derive_all(storage, settings, ds.DATE, "BTCUSDT")   # no ZSTD / CRC error
    assert 0 < len(tables["prices"]) < len(clean)
    assert len(clean) - len(tables["prices"]) <= lost
    ev = tables["events"].filter(pl.col("event_type") == verify.OPS_EVENT)
    assert len(ev) == 1 and bad.name in ev["meta_json"][0]


def test_validate_fails_raw_files_readable_naming_the_file(data, tmp_path, capsys):
    bad = trade_file(data)
    flip_inside_page(bad)
    rc = main(["validate", "--base-dir", str(data / "ofi_cvd"), "--output-dir", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "raw_files_readable" in out and "BTCUSDT: FAIL" in out and "ETHUSDT: PASS" in out
    doc = json.loads(next((tmp_path / "r").glob("dq_*.json")).read_text())
    assert str(bad) in json.dumps(doc) and "CRC" in json.dumps(doc)


def test_dagster_check_metric_fails_on_damage_and_passes_clean(data):
    settings = load_settings(None)
    ok = partition_metrics(data, settings, ds.DATE, "ETHUSDT", ["raw_files_readable"])[0]
    assert ok.passed is True and ok.value == 0 and ok.details["files_readable"] > 0
    bad = trade_file(data)
    bad.write_bytes(b"")
    r = partition_metrics(data, settings, ds.DATE, "BTCUSDT", ["raw_files_readable"])[0]
    assert r.passed is False and r.value == 1 and str(bad) in r.details["error"]
    from ofi_cvd_harvest.orchestration.checks import CHECKS_BY_ASSET, REPORTED_ONLY
    assert "raw_files_readable" in CHECKS_BY_ASSET["prices"]
    assert "raw_files_readable" not in REPORTED_ONLY          # blocking


def test_derive_names_each_bad_partition_and_carries_on(tmp_path, capsys):
    root = tmp_path / "data"
    for date in (OTHER_DATE, ds.DATE):
        for i, sym in enumerate(("BTCUSDT", "ETHUSDT")):
            ds.build_partition(root, date=date, symbol=sym, seed=i + 1, first_id=1000 + 50_000 * i)
    for p in (root / "ofi_cvd").glob("date=*"):            # derive writes them afresh
        import shutil
        shutil.rmtree(p)
    rotten = trade_file(root, "BTCUSDT", OTHER_DATE)
    flip_inside_page(rotten)
    foreign = trade_file(root, "ETHUSDT", ds.DATE)
    damage(foreign, "wrong_schema")
    # a partition whose output cannot be written (a file where its directory must go)
    (root / "ofi_cvd" / f"date={ds.DATE}").mkdir(parents=True)
    (root / "ofi_cvd" / f"date={ds.DATE}" / "symbol=BTCUSDT").write_text("in the way")
    rc = main(["derive", "--data-dir", str(root), "--symbols", "BTCUSDT,ETHUSDT"])
    cap = capsys.readouterr()
    assert rc == 1
    err = cap.err
    assert f"{OTHER_DATE} BTCUSDT: damaged raw file left out: {rotten}" in err and "CRC" in err
    assert f"{ds.DATE} ETHUSDT: damaged raw file left out: {foreign}: wrong schema" in err
    assert f"{ds.DATE} BTCUSDT: FAILED:" in err and "Traceback" not in err + cap.out
    # the damaged partitions fail raw_files_readable: quarantined, not published
    assert "4 partitions, 1 failed" in err and "2 quarantined" in err
    for date, sym in ((OTHER_DATE, "BTCUSDT"), (ds.DATE, "ETHUSDT")):
        part = f"date={date}/symbol={sym}"
        assert not (root / "ofi_cvd" / part / "kind=prices").exists(), (date, sym)
        verdict = json.loads((root / "quarantine" / part / "dq.json").read_text())
        assert "raw_files_readable" in verdict["failed_checks"], verdict["failed_checks"]
        assert f"{date} {sym}: prices=" in cap.out
    assert (root / "ofi_cvd" / f"date={OTHER_DATE}" / "symbol=ETHUSDT" / "kind=prices" /
            "part-00000.parquet").exists()
    assert f"{OTHER_DATE} ETHUSDT: prices=" in cap.out
