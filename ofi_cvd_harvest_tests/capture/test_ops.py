"""capture/ops.py on its own: where an event's rows land, and how a flood of decode errors is
bounded (logged once per kind, at most ``max_per_kind`` rows a rotation, the rest summarised)."""

from __future__ import annotations

import datetime as dt
import logging

import orjson

from ofi_cvd_harvest.capture.buffers import RawBuffers
from ofi_cvd_harvest.capture.ops import OpsRecorder
from ofi_cvd_harvest.protocol.decode import DecodeError

from ..metricvalue import metric

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
NOW = 1_721_347_200_000


def recorder(max_per_kind: int = 100, log: logging.Logger | None = None):
    buffers = RawBuffers()
    return OpsRecorder(buffers, SYMS, log or logging.getLogger("test_ops"), max_per_kind), buffers


def rows(buffers: RawBuffers) -> list[dict]:
    """The buffered ops rows with their partition symbol, meta decoded."""
    out = []
    for b in buffers.drain():
        assert b.stream == "ops"
        for r in b.table.to_pylist():
            out.append({**r, "partition": b.symbol, "meta": orjson.loads(r["meta_json"])})
    return sorted(out, key=lambda r: (r["partition"], r["recv_ts_ms"]))


def test_a_symbol_event_lands_in_its_partition_only():
    ops, buffers = recorder()
    ops.emit("book_gap", {"u": 5}, symbol="ETHUSDT", now_ms=NOW)
    (row,) = rows(buffers)
    assert (row["partition"], row["symbol"], row["event_type"], row["recv_ts_ms"]) == (
        "ETHUSDT", "ETHUSDT", "book_gap", NOW)
    assert row["meta"] == {"u": 5} and ops.counts["book_gap"] == 1


def test_a_process_event_is_copied_to_every_symbol_with_an_empty_symbol():
    ops, buffers = recorder()
    ops.emit("clock_drift", {"drift_ms": 12.5}, now_ms=NOW)
    got = rows(buffers)
    assert [r["partition"] for r in got] == sorted(SYMS)
    assert {r["symbol"] for r in got} == {""} and all(r["meta"]["drift_ms"] == 12.5 for r in got)
    assert ops.counts["clock_drift"] == 1          # one event, however many copies


def test_a_connection_event_goes_to_the_symbols_it_concerns():
    ops, buffers = recorder()
    ops.emit("disconnect", {"conn_id": 3}, symbols=("SOLUSDT",), now_ms=NOW)
    ops.emit("connect", None, symbols=(), now_ms=NOW)           # no symbols: no rows
    assert [(r["partition"], r["meta"]) for r in rows(buffers)] == [("SOLUSDT", {"conn_id": 3})]


def test_meta_that_json_cannot_hold_is_stringified_not_fatal():
    ops, buffers = recorder()
    when = dt.datetime(2024, 7, 19, tzinfo=dt.timezone.utc)
    ops.emit("odd", {"when": when, "error": ValueError("boom"), "bytes": b"\xff"},
             symbol="BTCUSDT", now_ms=NOW)
    (row,) = rows(buffers)
    assert row["meta"]["when"].startswith("2024-07-19") and row["meta"]["error"] == "boom"


def test_decode_errors_are_logged_once_bounded_per_rotation_and_summarised(caplog):
    ops, buffers = recorder(max_per_kind=3)
    before = metric("decode_errors_total", kind="bad_json")
    err = DecodeError("bad_json", "unexpected character", b"{not json" + b"x" * 500)
    with caplog.at_level(logging.WARNING, logger="test_ops"):
        for i in range(10):
            ops.decode_error(err, conn_id=7, symbols=("BTCUSDT",), now_ms=NOW + i)
    assert len([r for r in caplog.records if "bad_json" in r.getMessage()]) == 1
    assert metric("decode_errors_total", kind="bad_json") == before + 10   # every one counted
    assert ops.decode_errors["bad_json"] == 10
    recorded = rows(buffers)
    assert [r["event_type"] for r in recorded] == ["decode_error"] * 3
    assert recorded[0]["meta"]["conn_id"] == 7 and len(recorded[0]["meta"]["sample"]) == 200
    ops.end_window()                # a rotation: the rest is summarised, in every partition
    summary = rows(buffers)
    assert [r["partition"] for r in summary] == sorted(SYMS)
    assert {r["event_type"] for r in summary} == {"decode_errors_suppressed"}
    assert all(r["meta"] == {"kind": "bad_json", "count": 7} for r in summary)
    ops.decode_error(err, conn_id=7, symbols=("BTCUSDT",), now_ms=NOW + 99)   # a new window
    assert [r["event_type"] for r in rows(buffers)] == ["decode_error"]
    ops.end_window()
    assert rows(buffers) == []                      # nothing suppressed: no summary row


def test_each_kind_has_its_own_bound():
    ops, buffers = recorder(max_per_kind=1)
    for kind in ("bad_json", "bad_field", "bad_json"):
        ops.decode_error(DecodeError(kind, "x"), 1, ("ETHUSDT",), NOW)
    kinds = [r["meta"]["kind"] for r in rows(buffers)]
    assert sorted(kinds) == ["bad_field", "bad_json"]
