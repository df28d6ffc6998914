"""Crash-safe segments: append, roll, recover (including a torn tail), release."""

import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.segments import SegmentLog, read_segment, recover


def ops_table(n, start=0):
    return pa.table({"recv_ts_ms": list(range(start, start + n)), "symbol": ["BTCUSDT"] * n,
                     "event_type": ["x"] * n, "meta_json": ["{}"] * n}, schema=schemas.OPS)


def test_append_roll_recover_release(tmp_path):
    log = SegmentLog(tmp_path / "raw", "123x456")
    k1 = ("ops", "2024-07-19", "BTCUSDT")
    k2 = ("ops", "2024-07-19", "ETHUSDT")
    p1 = log.append(k1, ops_table(3))
    assert log.append(k1, ops_table(2, 3)) == p1
    p2 = log.append(k2, ops_table(1))
    rolled = log.roll()
    assert rolled == {k1: p1, k2: p2}
    p3 = log.append(k1, ops_table(4, 10))                 # next generation, new file
    assert p3 != p1
    found = {(r.stream, r.date, r.symbol): r for r in recover(tmp_path / "raw")}
    assert found[k1].table.num_rows == 9 and sorted(found[k1].paths) == sorted([p1, p3])
    assert found[k1].table.schema == schemas.OPS
    assert found[k2].table.column("recv_ts_ms").to_pylist() == [0]
    SegmentLog.release([p1, p2, p3])
    log.close()
    assert recover(tmp_path / "raw") == []


def test_torn_tail_keeps_complete_batches(tmp_path):
    log = SegmentLog(tmp_path / "raw", "1x1")
    k = ("ops", "2024-07-19", "BTCUSDT")
    p = log.append(k, ops_table(5))
    log.append(k, ops_table(5, 5))
    log.roll()
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-40])                       # killed mid-append
    t = read_segment(p)
    assert t is not None and t.num_rows == 5
    open(p, "wb").write(b"")                              # killed before the schema
    assert read_segment(p) is None
    assert recover(tmp_path / "raw") == []                # empty segments are cleaned up
    assert not list((tmp_path / "raw" / "_segments").glob("*"))
