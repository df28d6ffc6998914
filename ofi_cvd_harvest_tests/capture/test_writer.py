"""capture/writer.py on its own: a drained batch becomes one final zstd Parquet file; a write
that fails is retried, counted, reported and leaves no temporary file; the batch survives for
the caller's next attempt."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.buffers import RawBuffers
from ofi_cvd_harvest.capture.writer import RawWriter
from ofi_cvd_harvest.protocol.records import AggTrade
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage

from ..metricvalue import metric

MIDNIGHT = 1_721_347_200_000   # 2024-07-19


def trades_batch(symbol: str = "BTCUSDT", n: int = 5, first_id: int = 100):
    buffers = RawBuffers()
    for i in range(n):
        E = MIDNIGHT + 1000 * i
        buffers.add_trade(E + 3, AggTrade(E, symbol, first_id + i, 64000.0 + i, 0.01, 7, 8,
                                          E - 1, bool(i % 2)), "ws", 1)
    (batch,) = buffers.drain()
    return batch


def test_a_batch_becomes_one_final_file(tmp_path):
    storage = Storage(tmp_path)
    writer = RawWriter(storage, retries=0)
    batch = trades_batch()
    before = metric("files_finalised_total", table="agg_trade")
    path = writer.write(batch)
    assert path == storage.path(layout.raw_file("2024-07-19", "BTCUSDT", "agg_trade",
                                                MIDNIGHT + 3, 1))
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == schemas.AGG_TRADE
    assert table.column("agg_trade_id").to_pylist() == [100, 101, 102, 103, 104]
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert list(writer.files) == [path] and writer.files_written == 1
    assert writer.failed_attempts == 0 and batch.attempts == 1
    assert metric("files_finalised_total", table="agg_trade") == before + 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_same_partition_twice_gets_two_names(tmp_path):
    writer = RawWriter(Storage(tmp_path), retries=0)
    a, b = writer.write(trades_batch()), writer.write(trades_batch())
    assert a != b and a.endswith("-000001.parquet") and b.endswith("-000002.parquet")


def test_failed_writes_are_retried_counted_reported_and_leave_no_temp(tmp_path):
    (tmp_path / "raw").write_text("a file where the raw directory belongs")
    reported = []
    writer = RawWriter(Storage(tmp_path), retries=2, retry_sleep=0.001,
                       on_error=lambda batch, attempt, exc: reported.append((attempt, type(exc))))
    batch = trades_batch()
    before = metric("write_errors_total", table="agg_trade")
    assert writer.write(batch) is None
    assert [a for a, _ in reported] == [0, 1, 2]
    assert all(issubclass(t, OSError) for _, t in reported)
    assert writer.failed_attempts == 3 and batch.attempts == 3 and writer.files_written == 0
    assert metric("write_errors_total", table="agg_trade") == before + 3
    # the caller keeps the batch; once the disk is back the same batch is written whole
    (tmp_path / "raw").unlink()
    path = writer.write(batch)
    assert pq.read_table(path).num_rows == 5 and batch.attempts == 4


def test_a_rename_that_fails_leaves_no_temporary_file(tmp_path):
    """The final name is taken by a directory: the temp file written beside it is removed."""
    storage = Storage(tmp_path)
    blocked = tmp_path / layout.raw_file("2024-07-19", "BTCUSDT", "agg_trade", MIDNIGHT + 3, 1)
    blocked.mkdir(parents=True)
    writer = RawWriter(storage, retries=1, retry_sleep=0.001)
    assert writer.write(trades_batch()) is None
    assert writer.failed_attempts == 2
    assert not list(tmp_path.rglob("*.tmp")) and blocked.is_dir()


def test_a_raising_error_callback_is_not_swallowed(tmp_path):
    """on_error is the error budget's hook: a fatal decision there must reach the caller."""
    (tmp_path / "raw").write_text("x")

    def budget(batch, attempt, exc):
        raise RuntimeError("budget exceeded")
    writer = RawWriter(Storage(tmp_path), retries=3, retry_sleep=0.001, on_error=budget)
    with pytest.raises(RuntimeError, match="budget exceeded"):
        writer.write(trades_batch())
    assert writer.failed_attempts == 1


def test_recent_files_are_bounded(tmp_path):
    class SmallWriter(RawWriter):
        recent_files = 3
    writer = SmallWriter(Storage(tmp_path), retries=0)
    paths = [writer.write(trades_batch(first_id=10 * i)) for i in range(5)]
    assert list(writer.files) == paths[-3:] and writer.files_written == 5
