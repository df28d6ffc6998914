"""Segment files shared by every symbol of a (stream, date) (issue 15): one append per stream a
second, recovery splits them per partition, a hand-over across UTC midnight goes to the files
of both dates, and the per-symbol files of the previous layout are still recovered."""

import random

import pyarrow as pa
import pyarrow.ipc as ipc

from ofi_cvd_harvest.capture.buffers import RawBuffers, build_spans
from ofi_cvd_harvest.capture.segments import DIRNAME, WRITE_OPTIONS, SegmentLog, frames, recover
from ofi_cvd_harvest.protocol.records import AggTrade

MIDNIGHT = 1_721_347_200_000   # 2024-07-19 00:00 UTC
SYMS = [f"S{i:02d}USDT" for i in range(40)]


def _handover(buf: RawBuffers, t0: int, rng: random.Random, seq: int):
    """A second of rows for every symbol, event times t0 .. t0 + 2 ms; a connection event is
    copied into every partition with symbol ""."""
    for k, sym in enumerate(SYMS):
        for j in range(3):
            E, u = t0 + j, seq * 10 + j
            buf.add_book_row({
                "recv_ts_ms": E + 1, "event_ts_ms": E, "transact_ts_ms": E, "symbol": sym,
                "first_update_id": u, "final_update_id": u, "prev_final_update_id": u - 1,
                "gap": False, "conn_id": k % 3, "bid_px": [rng.random()] * (j + 1),
                "bid_qty": [1.0] * (j + 1), "ask_px": [2.0], "ask_qty": [rng.random()]})
            buf.add_trade(E + 1, AggTrade(E, sym, u, rng.random(), 1.0, u, u, E, j == 1),
                          "ws", k % 3)
        buf.add_ops(t0 + 2, sym, "", "reconnect", '{"seq": %d}' % seq)
    return build_spans(buf.swap())


def _partitions(spans_per_handover):
    """What each partition received, in order: the reference for recovery."""
    out: dict = {}
    for spans in spans_per_handover:
        for s in spans:
            out.setdefault((s.stream, s.date, s.symbol), []).append(s.slice())
    return {k: pa.concat_tables(v) for k, v in out.items()}


def test_one_file_per_stream_and_date_and_a_midnight_handover(tmp_path):
    rng, buf = random.Random(1), RawBuffers()
    log = SegmentLog(tmp_path / "raw", "7x7")
    # before midnight, across it (rows of both dates in one stream table), after it
    handovers = [_handover(buf, t0, rng, i)
                 for i, t0 in enumerate((MIDNIGHT - 1001, MIDNIGHT - 1, MIDNIGHT + 999))]
    for i, spans in enumerate(handovers):
        framed = frames(spans)
        if i == 1:   # the book table holds both dates; each date's file gets its rows only
            whole = next(s.table for s in spans if s.stream == "book")
            assert whole.num_rows == 3 * len(SYMS)
            assert [framed[("book", d)].num_rows for d in ("2024-07-18", "2024-07-19")] == [
                len(SYMS), 2 * len(SYMS)]
        else:
            assert all(framed[("book", s.date)] is s.table for s in spans if s.stream == "book")
        for key, table in framed.items():
            log.append(key, table)
    log.roll()
    segs = sorted(p.name for p in (tmp_path / "raw" / DIRNAME).iterdir())
    # one file per (stream, date), not one per symbol; ops are dated by receipt
    assert len(segs) == 6, segs
    assert {n.split("-", 2)[2] for n in segs} == {
        f"{st}-{d}.arrows" for st in ("agg_trade", "book", "ops")
        for d in ("2024-07-18", "2024-07-19")}
    want = _partitions(handovers)
    found = {(r.stream, r.date, r.symbol): r for r in recover(tmp_path / "raw")}
    assert set(found) == set(want) and len(want) == 6 * len(SYMS)
    for key, table in want.items():
        assert found[key].table.equals(table), key          # every row, once, in order
        assert found[key].table.schema == table.schema
        assert len(found[key].paths) == 1
    ops = found[("ops", "2024-07-19", "S07USDT")].table
    assert set(ops["symbol"].to_pylist()) == {""} and ops.num_rows == 2


def _old_segment(d, run, n, stream, date, symbol, tables):
    """A segment file exactly as the previous version wrote it: one per (stream, date, symbol)."""
    path = d / f"{run}-g000000n{n}-{stream}-{date}-{symbol}.arrows"
    with open(path, "ab") as fh:
        w = ipc.new_stream(fh, tables[0].schema, options=WRITE_OPTIONS)
        for t in tables:
            w.write_table(t)
            fh.flush()
    return path


def test_old_per_symbol_files_are_still_recovered(tmp_path):
    rng, buf = random.Random(2), RawBuffers()
    first, second = (_handover(buf, MIDNIGHT + 5_000 + i * 1000, rng, i) for i in range(2))
    d = tmp_path / "raw" / DIRNAME
    d.mkdir(parents=True)
    old = {}
    for n, s in enumerate(first):   # the crashed old version's files of the first second
        old[(s.stream, s.date, s.symbol)] = _old_segment(d, "11x22", n + 1, s.stream, s.date,
                                                         s.symbol, [s.slice()])
    torn = old[("book", "2024-07-19", "S03USDT")]
    torn.write_bytes(torn.read_bytes() + b"\xff\xff\xff\xff\x10\x00")   # killed mid-append
    (d / "not-a-segment.arrows").write_bytes(b"x")
    log = SegmentLog(tmp_path / "raw", "33x44")   # the new version's files of the next second
    for key, table in frames(second).items():
        log.append(key, table)
    log.roll()
    want = _partitions([first, second])
    found = {(r.stream, r.date, r.symbol): r for r in recover(tmp_path / "raw")}
    assert set(found) == set(want)
    for key, table in want.items():
        assert found[key].table.equals(table), key
        assert found[key].paths[0] == str(old[key]) and len(found[key].paths) == 2
    assert (d / "not-a-segment.arrows").exists()   # not ours: left alone
