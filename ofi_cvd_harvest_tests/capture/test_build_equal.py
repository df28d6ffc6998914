"""The reworked hand-over build (capture/buffers.py ``build_spans``) equals the build it replaced
(the frozen copy in buffers_v1.py) table for table and, written with the raw-file options, byte
for byte -- for hostile shapes: one partition, hundreds, empty partitions, a midnight split,
book rows with empty or uneven level lists, REST and WS trades mixed."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings, strategies as st

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture import buffers as new
from ofi_cvd_harvest.protocol.records import AggTrade
from ofi_cvd_harvest.storage.fs import parquet_options

from . import buffers_v1 as old

MIDNIGHT = 1_721_347_200_000   # 2024-07-19


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema))
    return sink.getvalue().to_pybytes()


def _trade(E: int, sym: str, i: int, rng: random.Random) -> AggTrade:
    return AggTrade(E, sym, i, 100 + rng.random(), rng.random(), i * 3, i * 3 + rng.randint(0, 2),
                    E - rng.randint(0, 3), rng.random() < 0.5)


def _levels(rng: random.Random, n: int) -> list[float]:
    return [rng.uniform(-1e9, 1e9) if rng.random() < 0.1 else 100 + rng.random()
            for _ in range(n)]


def _book(E: int, sym: str, u: int, rng: random.Random, uneven: bool) -> dict:
    nb, na = rng.choice((10, 10, 0, 1, 5)), rng.choice((10, 10, 0, 3))
    nbq = rng.randint(0, 10) if uneven else nb     # px and qty of one side may even differ
    return {"recv_ts_ms": E + rng.randint(0, 50), "event_ts_ms": E, "transact_ts_ms": E - 1,
            "symbol": sym, "first_update_id": u - 3, "final_update_id": u,
            "prev_final_update_id": u - 4, "bid_px": _levels(rng, nb),
            "bid_qty": _levels(rng, nbq), "ask_px": _levels(rng, na),
            "ask_qty": _levels(rng, na), "gap": rng.random() < 0.1, "conn_id": rng.randint(0, 9)}


def _fill(buf, seed: int, symbols: list[str], rows: int, span_ms: int, uneven: bool,
          empty_parts: bool) -> None:
    """Seeded rows into ``buf`` (the same seed: the same rows in the same order)."""
    rng = random.Random(seed)
    for k in range(rows):
        sym = rng.choice(symbols)
        E = MIDNIGHT - span_ms // 2 + rng.randint(0, span_ms)
        kind = rng.random()
        if kind < 0.45:
            buf.add_trade(E + 5, _trade(E, sym, 1000 + k, rng), rng.choice(("ws", "ws", "rest")),
                          rng.randint(0, 3))
        elif kind < 0.95:
            buf.add_book_row(_book(E, sym, 10_000 + k, rng, uneven))
        else:
            buf.add_ops(E, sym, sym, "connect", '{"k": %d}' % k)
    if empty_parts:   # partitions that exist but never got a row
        buf.trade_cols("2024-07-20", "EMPTYUSDT")
        buf.book[("2024-07-20", "EMPTYUSDT")] = _book_cols(buf)()
        buf.add_ops(MIDNIGHT, "EMPTYUSDT", "", "x", "{}")
        buf.ops[("2024-07-19", "EMPTYUSDT")] = type(buf.ops[("2024-07-19", "EMPTYUSDT")])()


def _book_cols(buf):
    return old.BookCols if isinstance(buf, old.RawBuffers) else new.BookCols


def _assert_same(sw_old, sw_new) -> None:
    a, b = old.build_spans(sw_old), new.build_spans(sw_new)
    assert [(s.stream, s.date, s.symbol, s.offset, s.rows, s.first_recv_ms, s.trade_ids)
            for s in a] == [(s.stream, s.date, s.symbol, s.offset, s.rows, s.first_recv_ms,
                             s.trade_ids) for s in b]
    tables_old = {id(s.table): s.table for s in a}
    tables_new = {id(s.table): s.table for s in b}
    assert len(tables_old) == len(tables_new)
    for x, y in zip(tables_old.values(), tables_new.values()):
        assert y.schema == x.schema == schemas.RAW_SCHEMAS[[s.stream for s in b
                                                            if s.table is y][0]]
        assert y.equals(x)
    for x, y in zip(a, b):
        assert y.slice().equals(x.slice())
        assert _parquet(y.slice()) == _parquet(x.slice())


def _check(seed: int, n_symbols: int, rows: int, span_ms: int, uneven: bool = False,
           empty_parts: bool = False) -> None:
    symbols = [f"S{i:03d}USDT" for i in range(n_symbols)]
    bo, bn = old.RawBuffers(), new.RawBuffers()
    for b in (bo, bn):
        _fill(b, seed, symbols, rows, span_ms, uneven, empty_parts)
    _assert_same(bo.swap(), bn.swap())


def test_one_partition():
    _check(1, 1, 400, 1000)


def test_one_row_of_each_stream():
    _check(2, 1, 3, 10)


def test_a_300_symbol_hand_over_across_midnight():
    _check(3, 300, 6000, 4000)


def test_empty_partitions_and_empty_or_uneven_levels():
    _check(4, 7, 500, 2000, uneven=True, empty_parts=True)


def test_only_empty_partitions():
    bo, bn = old.RawBuffers(), new.RawBuffers()
    for b in (bo, bn):
        _fill(b, 5, ["XUSDT"], 0, 10, False, True)
    assert new.build_spans(bn.swap()) == [] == old.build_spans(bo.swap())


def test_every_book_row_without_levels():
    bo, bn = old.RawBuffers(), new.RawBuffers()
    for b in (bo, bn):
        for i, sym in enumerate(("AUSDT", "BUSDT", "AUSDT")):
            b.add_book_row({"recv_ts_ms": MIDNIGHT + i, "event_ts_ms": MIDNIGHT - 1 + 2 * i,
                            "transact_ts_ms": MIDNIGHT, "symbol": sym, "first_update_id": i,
                            "final_update_id": i, "prev_final_update_id": i, "bid_px": [],
                            "bid_qty": [], "ask_px": [], "ask_qty": [], "gap": True,
                            "conn_id": 1})
    _assert_same(bo.swap(), bn.swap())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n_symbols=st.integers(1, 40), rows=st.integers(1, 300),
       span_ms=st.sampled_from((1, 1000, 86_400_000 * 2)), uneven=st.booleans(),
       empty_parts=st.booleans())
def test_build_equals_the_old_build(seed, n_symbols, rows, span_ms, uneven, empty_parts):
    _check(seed, n_symbols, rows, span_ms, uneven, empty_parts)

