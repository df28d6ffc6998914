"""storage/verify.py beyond the DQ tests' damage cases (dq/test_raw_files.py): the schema rule
(string/list variants are one type, order free, differences named), the manifest (a file read
once, again when it changes, a damaged manifest only costs a re-read), and where damage rows go."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.storage import layout, verify
from ofi_cvd_harvest.storage.fs import Storage

from ..damage import flip_inside_page

DATE = "2024-07-19"
MIDNIGHT = 1_721_347_200_000


def trades(n: int = 20_000) -> pa.Table:
    ts = [MIDNIGHT + i for i in range(n)]
    return pa.table({
        "recv_ts_ms": ts, "event_ts_ms": ts, "trade_ts_ms": ts, "symbol": ["BTCUSDT"] * n,
        "agg_trade_id": list(range(n)), "price": [64000.0 + i % 13 for i in range(n)],
        "qty": [0.001 * (1 + i % 17) for i in range(n)], "first_trade_id": list(range(n)),
        "last_trade_id": list(range(n)), "is_buyer_maker": [i % 2 == 0 for i in range(n)],
        "source": ["ws"] * n, "conn_id": [1] * n}, schema=schemas.AGG_TRADE)


def raw_file(st: Storage, seq: int, table: pa.Table | None = None, first_ms: int = MIDNIGHT,
             date: str = DATE) -> str:
    rel = layout.raw_file(date, "BTCUSDT", "agg_trade", first_ms, seq)
    return st.write_parquet(rel, trades() if table is None else table)


def test_stream_of():
    assert verify.stream_of("/d/raw/date=x/symbol=Y/stream=book/part-1-000001.parquet") == "book"
    assert verify.stream_of("C:\\d\\raw\\stream=ops\\p.parquet") == "ops"
    assert verify.stream_of("/d/ofi_cvd/date=x/kind=cvd/part-00000.parquet") is None


def test_string_and_list_variants_and_column_order_are_accepted(tmp_path):
    path = tmp_path / "b.parquet"
    def widened(t: pa.DataType) -> pa.DataType:
        if t == pa.list_(pa.float64()):
            return pa.large_list(pa.float64())
        return pa.large_string() if t == pa.string() else t
    wide = pa.schema([pa.field(f.name, widened(f.type)) for f in reversed(schemas.BOOK)])
    pq.write_table(wide.empty_table(), path)
    assert verify.check_file(str(path), schemas.BOOK) is None


def test_schema_differences_are_named(tmp_path):
    t = trades(5).drop_columns(["conn_id"]).append_column("extra", pa.array([1] * 5))
    t = t.set_column(t.schema.get_field_index("price"), "price",
                     t.column("price").cast(pa.float32()))
    path = tmp_path / "t.parquet"
    pq.write_table(t, path)
    reason = verify.check_file(str(path), schemas.AGG_TRADE)
    assert reason == ("wrong schema: missing conn_id; unexpected extra; "
                      "price float (expected double)")
    assert verify.check_file(str(path)) is None          # no schema asked: bytes only


def test_a_file_is_read_once_and_again_when_it_changes(tmp_path):
    st = Storage(tmp_path)
    good = raw_file(st, 1)
    first = verify.verify(st, [good])
    assert first.good == [good] and first.read_files == 1 and first.read_bytes > 0
    again = verify.verify(st, [good])
    assert again.good == [good] and again.read_files == 0          # remembered
    flip_inside_page(tmp_path / good[len(str(tmp_path)) + 1:], column="qty")   # size kept
    os.utime(good, ns=(1, 1))                                      # mtime changes
    changed = verify.verify(st, [good], record=False)
    assert changed.read_files == 1 and "CRC" in changed.damaged[good]
    assert not list(tmp_path.glob("raw/**/stream=ops/*.parquet"))  # record=False: no ops row


def test_a_damaged_manifest_costs_a_re_read_not_a_failure(tmp_path):
    st = Storage(tmp_path)
    good = raw_file(st, 1)
    verify.verify(st, [good])
    manifest = os.path.join(os.path.dirname(good), verify.MANIFEST)
    for text in ("{not json", "[]", json.dumps({"files": {"x": "y", os.path.basename(good): [1]}})):
        with open(manifest, "w") as fh:
            fh.write(text)
        out = verify.verify(st, [good])
        assert out.good == [good] and out.read_files == 1
        doc = json.load(open(manifest))
        assert doc["version"] == 1 and os.path.basename(good) in doc["files"]


def test_a_file_gone_since_listing_is_skipped(tmp_path):
    st = Storage(tmp_path)
    good, gone = raw_file(st, 1), raw_file(st, 2)
    os.remove(gone)
    out = verify.verify(st, [good, gone])
    assert out.good == [good] and out.damaged == {}


def test_damage_rows_land_in_the_day_of_the_partition(tmp_path):
    st = Storage(tmp_path)
    # a file named for a receipt time before its partition's day (a late trade of the 18th)
    bad = raw_file(st, 1, first_ms=MIDNIGHT - 5000)
    outside = str(tmp_path.parent / "elsewhere" / "stream=agg_trade" / "p.parquet")
    written = verify.record_damaged(st, {bad: "damaged data: test", outside: "x"})
    assert len(written) == 1 and "/stream=ops/" in written[0]
    (row,) = pq.read_table(written[0]).to_pylist()
    assert row["recv_ts_ms"] == MIDNIGHT and row["event_type"] == verify.OPS_EVENT
    assert json.loads(row["meta_json"]) == {
        "path": bad[len(str(tmp_path)) + 1:], "stream": "agg_trade", "reason": "damaged data: test"}
