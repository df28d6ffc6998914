"""The staging area: the same rows, in the same order, as a minute of per-partition Arrow slices,
in one chunk per file, at a fraction of their heap (docs/performance.md "Where a minute of staged
rows went", §12)."""

import ctypes
import gc
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest.capture.buffers import RawBuffers, build, build_spans
from ofi_cvd_harvest.capture import staging
from ofi_cvd_harvest.capture.staging import StagingArea
from ofi_cvd_harvest.protocol.records import AggTrade
from ofi_cvd_harvest.storage.fs import parquet_options

MIDNIGHT = 1_721_347_200_000   # 2024-07-19


def _fill(buf: RawBuffers, second: int, symbols: list[str], rng: random.Random,
          books: int = 3, trades: int = 2) -> None:
    """One hand-over: random rows for every symbol, some around midnight (two dates)."""
    t0 = MIDNIGHT - 2_000 + second * 1_000
    for k, sym in enumerate(symbols):
        for j in range(rng.randint(0, books)):
            E = t0 + j
            nb, na = rng.randint(0, 10), rng.randint(0, 10)
            buf.add_book_row({
                "recv_ts_ms": E + 3, "event_ts_ms": E, "transact_ts_ms": E - 1, "symbol": sym,
                "first_update_id": second * 100 + j, "final_update_id": second * 100 + j + 1,
                "prev_final_update_id": second * 100 + j - 1, "gap": rng.random() < 0.1,
                "conn_id": k % 3, "bid_px": [rng.random() for _ in range(nb)],
                "bid_qty": [rng.random() for _ in range(nb)],
                "ask_px": [rng.random() for _ in range(na)],
                "ask_qty": [rng.random() for _ in range(na)]})
        for j in range(rng.randint(0, trades)):
            i = 10**9 + second * 10 + j
            buf.add_trade(t0 + j + 2, AggTrade(t0 + j, sym, i, rng.random(), rng.random(), i,
                                               i, t0 + j, rng.random() < 0.5), "ws", k % 3)
        if rng.random() < 0.05:
            buf.add_ops(t0, sym, sym, "gap_detected", '{"n": 1}')


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema))
    return sink.getvalue().to_pybytes()


def _old_staging(handovers: list) -> list:
    """The representation this replaced: per partition, a list of its build() slices, concatenated
    at rotation in the order partitions first arrived."""
    staged: dict = {}
    for b in (b for sw in handovers for b in build(sw)):
        staged.setdefault((b.stream, b.date, b.symbol), []).append(b)
    out = []
    for key, parts in staged.items():
        table = parts[0].table if len(parts) == 1 else pa.concat_tables([p.table for p in parts])
        out.append((key, table, min(p.first_recv_ms for p in parts),
                    [i for p in parts for i in p.trade_ids]))
    return out


def _handovers(n: int, symbols: list[str], seed: int, **kw) -> list:
    rng, buf, out = random.Random(seed), RawBuffers(), []
    for s in range(n):
        _fill(buf, s, symbols, rng, **kw)
        out.append(buf.swap())
    return out


@pytest.mark.parametrize("group_rows", [1 << 16, 7, 1])
def test_files_hold_the_concatenated_slices_in_one_chunk(group_rows, monkeypatch):
    """Each batch is the old per-partition concatenation, gathered into one chunk: the same rows
    in the same order, and the same file as that concatenation combined (whatever the grouping:
    one take for everything, several per stream, one per partition)."""
    monkeypatch.setattr(staging, "GROUP_ROWS", group_rows)
    symbols = [f"S{i:02d}USDT" for i in range(12)]
    old = _old_staging(_handovers(6, symbols, seed=3))
    area = StagingArea()
    for sw in _handovers(6, symbols, seed=3):
        for span in build_spans(sw):
            area.add(span, f"/seg/{span.stream}-{span.symbol}-{span.offset}")
    assert area.rows() == sum(t.num_rows for _, t, _, _ in old)
    new = list(area.take())
    assert len(area) == 0
    assert [(b.stream, b.date, b.symbol) for b in new] == [k for k, _, _, _ in old]
    assert {b.date for b in new} == {"2024-07-18", "2024-07-19"}
    assert {b.stream for b in new} == {"agg_trade", "book", "ops"}
    assert any(t.column(0).num_chunks > 1 for _, t, _, _ in old)   # the case that changed
    for b, (_, table, first, ids) in zip(new, old):
        assert b.first_recv_ms == first and b.trade_ids == ids
        assert all(c.num_chunks == 1 for c in b.table.columns)
        assert b.table.equals(table)
        assert _parquet(b.table) == _parquet(table.combine_chunks())
        assert b.segment_paths == sorted(set(b.segment_paths))


def test_checkpoint_sees_staged_trade_ids_and_segment_files():
    area = StagingArea()
    named: dict = {}
    for i, sw in enumerate(_handovers(6, ["AUSDT", "BUSDT"], seed=5, books=0, trades=3)):
        for span in build_spans(sw):
            # segment files are shared by the symbols of a (stream, date); a batch names every
            # file its rows went to (here two per date, as after a torn file was replaced)
            path = f"/seg/g0n{1 + i % 2}-{span.stream}-{span.date}"
            area.add(span, path)
            named.setdefault((span.stream, span.date, span.symbol), set()).add(path)
    held = [(sym, list(ids)) for sym, ids in area.trade_ids()]
    assert sum(len(ids) for _, ids in held) > 0
    batches = [b for b in area.take() if b.stream == "agg_trade"]
    assert [(b.symbol, b.trade_ids) for b in batches] == held
    assert list(area.trade_ids()) == []
    for b in batches:
        assert b.trade_ids == b.table.column("agg_trade_id").to_pylist()
        assert b.segment_paths == sorted(named[(b.stream, b.date, b.symbol)])
    assert any(len(b.segment_paths) == 2 for b in batches)


class _MI2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]


def _heap_in_use() -> int:
    """Bytes in use: glibc malloc (numpy buffers, Arrow's C++ objects) + Arrow's own pool."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MI2
    mi = libc.mallinfo2()
    return mi.uordblks + mi.hblkhd + pa.total_allocated_bytes()


def _held_bytes(keep) -> tuple[int, int]:
    """(heap growth while ``keep`` builds its hold on 20 hand-overs of 150 symbols, the Arrow
    bytes of the rows held)."""
    handovers = _handovers(20, [f"S{i:03d}USDT" for i in range(150)], seed=9, books=2, trades=1)
    gc.collect()
    before = _heap_in_use()
    held = keep(handovers)
    handovers.clear()
    gc.collect()
    grown = _heap_in_use() - before
    data = sum(t.nbytes for t in {id(t): t for t in held[1]}.values())
    del held
    return grown, data


def test_staging_holds_its_rows_not_a_table_per_partition_and_hand_over():
    """Bounded by the rows: a partition's slice kept as a table costs ~6 KB of Arrow metadata,
    so a minute of them at 300 symbols was ~210 MB for ~90 MB of rows."""
    def staged(handovers):
        area = StagingArea()
        for sw in handovers:
            for span in build_spans(sw):
                area.add(span)
        tables = [t for st in area._parts.values() for t, _, _ in st.spans]
        return area, tables

    def sliced(handovers):   # what the area replaced: the same rows as per-partition slices
        batches = [b for sw in handovers for b in build(sw)]
        return batches, [b.table.slice(0, 0) for b in batches[:1]]

    _held_bytes(staged)   # once first: Arrow's and numpy's one-time allocations
    grown, data = _held_bytes(staged)
    # the rows, plus ~100 bytes of (table, offset, rows) per partition and hand-over
    assert grown < 2 * data + 1_500_000, (grown, data)
    # the measurement sees the difference: the slices' heap is many times their rows
    grown_sliced, _ = _held_bytes(sliced)
    assert grown_sliced > 5 * grown, (grown_sliced, grown)


def test_rows_arriving_during_a_slow_rotation_are_handed_over_and_go_to_the_next_file(tmp_path):
    """A rotation at 300 symbols takes seconds (tens under load): the loop keeps handing rows
    over meanwhile, so they wait as Arrow, not as its Python lists, and land in the next file."""
    import asyncio
    import threading
    import time

    from ofi_cvd_harvest.capture.runner import Capture
    from ofi_cvd_harvest.settings import load_settings

    s = load_settings(env={}, symbols=("AUSDT",), ws_base_url="ws://127.0.0.1:1",
                      rest_base_url="http://127.0.0.1:1", data_dir=tmp_path / "data",
                      artifacts_dir=tmp_path / "art", prometheus_port=0)
    cap = Capture(s)
    store = cap.store
    disk = threading.Event()           # a slow disk: the rotation's writes wait for it
    real_write = store.writer.write
    store.writer.write = lambda b: (disk.wait(30), real_write(b))[1]
    now = int(time.time() * 1000)

    def trades(ids):
        for i in ids:
            cap.buffers.add_trade(now + i, AggTrade(now + i, "AUSDT", i, 1.5, 0.25, i, i, now + i,
                                                    False), "ws", 1)

    async def run():
        trades(range(1, 6))
        store.stage()
        rotation = asyncio.create_task(store.rotate())
        await asyncio.sleep(0.2)
        trades(range(6, 11))             # received while the rotation writes
        await asyncio.sleep(1.6)          # > segment_flush_sec
        held_in_loop = cap.buffers.pending_rows()
        disk.set()
        await rotation
        await store.rotate()
        return held_in_loop

    try:
        held_in_loop = asyncio.run(run())
    finally:
        disk.set()
        store.shutdown_io()
    assert held_in_loop == 0
    files = sorted((tmp_path / "data" / "raw").rglob("stream=agg_trade/*.parquet"),
                   key=lambda p: int(p.stem.split("-")[2]))
    assert [pq.read_table(f).column("agg_trade_id").to_pylist() for f in files] == [
        [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
