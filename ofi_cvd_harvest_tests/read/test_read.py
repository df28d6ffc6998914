"""``read.scan`` and ``ofi-cvd-harvest sql`` against direct Parquet reads of a lake built through
the real capture layout and the DQ gate (lake.py)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest import read, schemas
from ofi_cvd_harvest.query import connect

from . import lake

ROOT = Path(__file__).resolve().parents[2]


def _direct(root: Path, kind: str, tree: str = "ofi_cvd") -> list[Path]:
    """The files a reader that knows the layout would glob (published tree only)."""
    if kind.startswith("raw_"):
        return sorted(root.glob(f"raw/date=*/symbol=*/stream={kind[4:]}/*.parquet"))
    return sorted(root.glob(f"{tree}/date=*/symbol=*/kind={kind}/*.parquet"))


def _rows(paths) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


@pytest.mark.parametrize("kind", read.KINDS)
def test_scan_equals_direct_reads(data, kind):
    got = read.scan(kind, data_dir=data).collect()
    paths = _direct(data, kind)
    assert paths and got.height == _rows(paths) > 0
    assert got.columns == [*read._schema(kind).names, "date"]
    assert got.schema["date"] == pl.Date
    want = pl.concat([pl.read_parquet(p).with_columns(
        pl.lit(p.parts[-4][5:]).str.to_date().alias("date"),
        pl.lit(p.parts[-3][7:]).alias("symbol")) for p in paths], how="vertical").select(got.columns)
    key = got.columns
    assert got.sort(key).equals(want.sort(key))


def test_partition_pruning(data):
    lf = read.scan("prices", data_dir=data, symbols=["ethusdt"], start="2024-07-19", end="2024-07-19")
    got = lf.collect()
    path = data / "ofi_cvd/date=2024-07-19/symbol=ETHUSDT/kind=prices/part-00000.parquet"
    assert got.height == _rows([path])
    assert got["symbol"].unique().to_list() == ["ETHUSDT"]
    assert got["date"].cast(pl.String).unique().to_list() == ["2024-07-19"]
    # only the wanted partition's files are handed to the reader
    found = read.parts("prices", data_dir=data, symbols="ETHUSDT", start="2024-07-19", end="2024-07-19")
    assert [(p.date, p.symbol, p.files) for p in found] == [("2024-07-19", "ETHUSDT", (str(path),))]
    # start / end alone
    assert {p.date for p in read.parts("cvd", data_dir=data, start="2024-07-19")} == {"2024-07-19"}
    assert {p.date for p in read.parts("cvd", data_dir=data, end="2024-07-18")} == {"2024-07-18"}
    assert read.scan("cvd", data_dir=data, start="2030-01-01").collect().height == 0


def test_pruned_partitions_are_never_opened(data, tmp_path):
    """A garbage ``.parquet`` file in another date and another symbol: a pruned scan does not
    touch them, an unpruned one does (and fails) — the pruning is real, not a row filter."""
    import shutil
    root = tmp_path / "data"
    shutil.copytree(data / "ofi_cvd", root / "ofi_cvd")
    for rel in ("ofi_cvd/date=2024-07-18/symbol=BTCUSDT/kind=fusion/part-00001.parquet",
                "ofi_cvd/date=2024-07-19/symbol=ETHUSDT/kind=fusion/part-00001.parquet"):
        (root / rel).write_bytes(b"not parquet at all")
    (root / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind=fusion/part-00000.parquet.ab12.tmp"
     ).write_bytes(b"half written")
    ok = read.scan("fusion", data_dir=root, symbols=["BTCUSDT"], start="2024-07-19").collect()
    assert ok.height == _rows([root / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind=fusion/part-00000.parquet"])
    with pytest.raises(Exception):
        read.scan("fusion", data_dir=root).collect()


def test_quarantine_visibility(data):
    qdir = data / "quarantine"
    both = f"date={lake.BOTH[0]}/symbol={lake.BOTH[1]}"
    only = f"date={lake.ONLY_Q[0]}/symbol={lake.ONLY_Q[1]}"
    assert (qdir / both / "dq.json").is_file() and (qdir / only / "dq.json").is_file()
    published = read.scan("prices", data_dir=data).collect()
    assert "quarantined" not in published.columns
    assert lake.ONLY_Q[0] not in published["date"].cast(pl.String).to_list()
    pub_both = _rows([data / f"ofi_cvd/{both}/kind=prices/part-00000.parquet"])
    q_both = _rows([qdir / both / "kind=prices/part-00000.parquet"])
    assert q_both < pub_both            # the quarantined derivation lost a few minutes of trades

    every = read.scan("prices", data_dir=data, include_quarantine=True).collect()
    per = {(str(d), s, q): n for d, s, q, n in every.group_by("date", "symbol", "quarantined").len().iter_rows()}
    assert per[(*lake.BOTH, True)] == q_both and (*lake.BOTH, False) not in per
    assert per[(*lake.ONLY_Q, True)] == _rows([qdir / only / "kind=prices/part-00000.parquet"])
    assert per[("2024-07-18", "BTCUSDT", False)] == _rows(
        [data / "ofi_cvd/date=2024-07-18/symbol=BTCUSDT/kind=prices/part-00000.parquet"])
    # raw streams are not gated: the flag changes nothing
    assert (read.scan("raw_agg_trade", data_dir=data, include_quarantine=True).collect().height
            == read.scan("raw_agg_trade", data_dir=data).collect().height)


def test_hostile_arguments(data, tmp_path):
    with pytest.raises(ValueError, match="unknown table"):
        read.scan("trades", data_dir=data)
    with pytest.raises(ValueError, match="start"):
        read.scan("cvd", data_dir=data, start="19-07-2024")
    with pytest.raises(ValueError, match="symbol"):
        read.scan("cvd", data_dir=data, symbols=["../etc"])
    empty = read.scan("events", data_dir=tmp_path / "nothing").collect()
    assert empty.height == 0 and empty.columns == [*schemas.EVENTS.names, "date"]


def test_sql_views_match_scan(data):
    con = connect(data)
    for kind in read.KINDS:
        n = con.execute(f"select count(*) from {kind}").fetchone()[0]
        assert n == read.scan(kind, data_dir=data).collect().height > 0, kind
    cols = [r[0] for r in con.execute("describe prices").fetchall()]
    assert cols == read.scan("prices", data_dir=data).collect_schema().names()
    got = con.execute("select symbol, sum(qty) from prices where date = '2024-07-18' group by 1 order by 1").fetchall()
    want = (read.scan("prices", data_dir=data, start="2024-07-18", end="2024-07-18").group_by("symbol")
            .agg(pl.col("qty").sum()).sort("symbol").collect().rows())
    assert [s for s, _ in got] == [s for s, _ in want]
    assert all(abs(a - b) < 1e-6 for (_, a), (_, b) in zip(got, want))
    qcon = connect(data, include_quarantine=True)
    n = qcon.execute(f"select count(*) from prices where quarantined and date = '{lake.ONLY_Q[0]}'").fetchone()[0]
    assert n == read.scan("prices", data_dir=data, include_quarantine=True,
                          start=lake.ONLY_Q[0]).collect().height > 0
    empty = connect(data.parent / "nothing")
    assert empty.execute("select count(*) from events").fetchone()[0] == 0


def _cli(*args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "sql", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_sql_cli(data, tmp_path):
    p = _cli("--data-dir", str(data), "select symbol, count(*) as n from raw_book group by 1 order by 1")
    assert "BTCUSDT" in p.stdout and "ETHUSDT" in p.stdout and "│" in p.stdout
    out = tmp_path / "ev.csv"
    _cli("--data-dir", str(data), "--format", "csv", "--out", str(out),
         "select date, symbol, event_type from events order by all")
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == read.scan("events", data_dir=data).collect().height
    pq_out = tmp_path / "q.parquet"
    _cli("--data-dir", str(data), "--include-quarantine", "--format", "parquet", "--out", str(pq_out),
         "select * from cvd where quarantined")
    t = pq.read_table(pq_out)
    assert t.num_rows > 0 and set(t.column("quarantined").to_pylist()) == {True}
    bad = _cli("--data-dir", str(data), "select * from nope", check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr
    missing = _cli("--data-dir", str(tmp_path / "absent"), "select 1", check=False)
    assert missing.returncode == 2
