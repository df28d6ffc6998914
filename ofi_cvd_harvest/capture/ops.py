"""Operational events -> the raw ``ops`` table, the run log and metrics (docs/capture.md "Ops event types").

An event about one symbol lands in that symbol's ops partition. An event about a connection
or the whole process (connect, clock drift, shutdown, …) is copied into the ops partition of
every symbol it concerns, with ``symbol = ""``, so each date×symbol partition carries the
full story of its coverage. Decode errors are logged once per kind with a sample and
recorded as events up to ``max_per_kind`` per rotation; the rest are summarised.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Iterable

import orjson

from ..monitoring import metrics
from ..protocol.decode import DecodeError
from .buffers import RawBuffers


class OpsRecorder:
    def __init__(self, buffers: RawBuffers, symbols: Iterable[str], log: logging.Logger,
                 max_per_kind: int = 100):
        self.buffers = buffers
        self.symbols = tuple(symbols)
        self.log = log
        self.max_per_kind = max_per_kind
        self.counts: Counter[str] = Counter()            # event_type -> count (whole run)
        self.decode_errors: Counter[str] = Counter()     # kind -> count (whole run)
        self._logged_kinds: set[str] = set()
        self._window: Counter[str] = Counter()           # kind -> recorded this rotation
        self._suppressed: Counter[str] = Counter()

    def emit(self, event_type: str, meta: dict | None = None, symbol: str | None = None,
             symbols: Iterable[str] | None = None, now_ms: int | None = None) -> None:
        """Record one event for ``symbol`` (or, with symbol None, for ``symbols``/all)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        meta_json = orjson.dumps(meta or {}, default=str).decode()
        self.counts[event_type] += 1
        if symbol is not None:
            self.buffers.add_ops(now_ms, symbol, symbol, event_type, meta_json)
            return
        for sym in (self.symbols if symbols is None else symbols):
            self.buffers.add_ops(now_ms, sym, "", event_type, meta_json)

    def decode_error(self, err: DecodeError, conn_id: int, symbols: Iterable[str] | None,
                     now_ms: int) -> None:
        kind = err.kind
        self.decode_errors[kind] += 1
        metrics.decode_errors_total.labels(kind).inc()
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            self.log.warning("decode error %s (%s), skipping; sample: %s (further %s errors are "
                             "counted in decode_errors_total and ops, not logged)",
                             kind, err.detail, err.sample[:200], kind)
        if self._window[kind] >= self.max_per_kind:
            self._suppressed[kind] += 1
            return
        self._window[kind] += 1
        self.emit("decode_error", {"kind": kind, "detail": err.detail, "sample": err.sample[:200],
                                   "conn_id": conn_id}, symbols=symbols, now_ms=now_ms)

    def end_window(self) -> None:
        """At each rotation: summarise suppressed decode errors and reset the window."""
        for kind, n in self._suppressed.items():
            self.emit("decode_errors_suppressed", {"kind": kind, "count": n})
        self._suppressed.clear()
        self._window.clear()
