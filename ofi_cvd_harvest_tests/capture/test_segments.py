"""Crash-safe segments: append, roll, recover (including a torn tail), release."""

import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.buffers import Span
from ofi_cvd_harvest.capture.segments import SegmentLog, frames, read_segment, recover


def ops_table(n, start=0, symbol="BTCUSDT"):
    return pa.table({"recv_ts_ms": list(range(start, start + n)), "symbol": [symbol] * n,
                     "event_type": ["x"] * n, "meta_json": ["{}"] * n}, schema=schemas.OPS)


def ops_frame(*parts):
    """The segment table of one hand-over's ops partitions ``(symbol, table)``."""
    spans = [Span("ops", "2024-07-19", sym, t, 0, t.num_rows, 0, []) for sym, t in parts]
    return frames(spans)[("ops", "2024-07-19")]


def test_append_roll_recover_release(tmp_path):
    log = SegmentLog(tmp_path / "raw", "123x456")
    k = ("ops", "2024-07-19")
    k1, k2 = k + ("BTCUSDT",), k + ("ETHUSDT",)
    # one file for every symbol; an ops row's symbol column may be "" (a connection event)
    p1 = log.append(k, ops_frame(("BTCUSDT", ops_table(3)),
                                 ("ETHUSDT", ops_table(1, symbol=""))))
    assert log.append(k, ops_frame(("BTCUSDT", ops_table(2, 3)))) == p1
    rolled = log.roll()
    assert rolled == {k: p1}
    p3 = log.append(k, ops_frame(("BTCUSDT", ops_table(4, 10))))   # next generation, new file
    assert p3 != p1
    found = {(r.stream, r.date, r.symbol): r for r in recover(tmp_path / "raw")}
    assert set(found) == {k1, k2}
    assert found[k1].table.num_rows == 9 and sorted(found[k1].paths) == sorted([p1, p3])
    assert found[k1].table.column("recv_ts_ms").to_pylist() == [0, 1, 2, 3, 4, 10, 11, 12, 13]
    assert found[k1].table.schema == schemas.OPS
    assert found[k2].table.equals(ops_table(1, symbol=""))
    assert found[k2].paths == [p1]
    SegmentLog.release([p1, p3])
    log.close()
    assert recover(tmp_path / "raw") == []


def test_torn_tail_keeps_complete_batches(tmp_path):
    log = SegmentLog(tmp_path / "raw", "1x1")
    k = ("ops", "2024-07-19")
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


FULL_DISK_SCRIPT = r"""
import resource, signal, sys
import pyarrow as pa
from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.segments import SegmentLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)            # writes fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
t = pa.table({"recv_ts_ms": list(range(500)), "symbol": ["BTCUSDT"] * 500,
              "event_type": ["x"] * 500, "meta_json": ["{}"] * 500}, schema=schemas.OPS)
log = SegmentLog(sys.argv[1], "9x9")
fails = 0
for i in range(20):                                    # a second of rows each, disk full
    try:
        log.append(("ops", "2024-07-19"), t)
    except OSError:
        fails += 1
log.close()
print(fails)
"""


def test_full_disk_leaves_no_empty_segment_files(tmp_path):
    """A file size limit makes every write fail as a full disk does (works as root, unlike
    chmod): 20 failed appends must not leave 20 empty files behind (issue 12)."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    raw = tmp_path / "raw"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(raw), "0"], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == 20
    assert list((raw / "_segments").glob("*")) == []


def test_segments_are_lz4_compressed_and_read_back(tmp_path):
    import numpy as np
    import pyarrow.ipc as ipc
    n = 20_000
    rng = np.random.default_rng(0)
    t = pa.table({"recv_ts_ms": np.arange(n, dtype=np.int64) + 1_700_000_000_000,
                  "symbol": ["BTCUSDT"] * n, "event_type": rng.choice(["a", "b"], n),
                  "meta_json": ["{}"] * n}, schema=schemas.OPS)
    log = SegmentLog(tmp_path / "raw", "1x2")
    p = log.append(("ops", "2024-07-19"), t)
    log.roll()
    with open(p, "rb") as fh:
        reader = ipc.open_stream(fh)
        batch = reader.read_next_batch()
    assert batch.num_rows == n
    assert read_segment(p).equals(t)
    plain = pa.BufferOutputStream()
    with ipc.new_stream(plain, t.schema) as w:
        w.write_table(t)
    import os
    assert os.path.getsize(p) < plain.getvalue().size * 0.8
