"""The capture's Prometheus metrics: one module-level registry so every component increments
the same series, and tests can scrape a real HTTP endpoint.

Names follow the original guide (``recv_rate_tps``, ``ws_reconnects_total``, …) and carry a
``symbol`` label where they apply. Every labelled series exists from start-up
(:func:`init_capture`): a counter first seen at 1 would be invisible to ``increase()``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .. import schemas

REGISTRY = CollectorRegistry()

LATENCY_BUCKETS_MS = (5, 10, 20, 30, 45, 60, 80, 100, 120, 150, 200, 300, 600, 1000, 2000, 5000)

# --- the eight metrics of the original guide ---------------------------------------------
recv_rate_tps = Gauge("recv_rate_tps", "Trades received per second (trailing 10 s)",
                      ["symbol"], registry=REGISTRY)
ws_reconnects_total = Counter("ws_reconnects_total", "WebSocket reconnects",
                              ["endpoint"], registry=REGISTRY)
dedup_hits_total = Counter("dedup_hits_total", "Duplicate aggTrades dropped by the dedup window",
                           ["symbol"], registry=REGISTRY)
latency_ms = Histogram("latency_ms", "Receipt time minus exchange event time (ms), aggTrade",
                       ["symbol"], buckets=LATENCY_BUCKETS_MS, registry=REGISTRY)
cvd_scale_median = Gauge("cvd_scale_median", "Median CVD z-engine scale over the trailing window",
                         ["symbol"], registry=REGISTRY)
cvd_floor_hit_rate = Gauge("cvd_floor_hit_rate",
                           "Share of trailing-window CVD rows where the MAD floor set the scale",
                           ["symbol"], registry=REGISTRY)
signal_events_total = Counter("signal_events_total",
                              "Live signal events (same state machines as the events table)",
                              ["symbol", "type"], registry=REGISTRY)
signal_z = Gauge("signal_z", "Last live z of a signal (monitoring.live_z_symbols only)",
                 ["symbol", "signal"], registry=REGISTRY)
data_rows_total = Counter("data_rows_total", "Rows written to finalised raw files",
                          ["symbol", "table"], registry=REGISTRY)
write_errors_total = Counter("write_errors_total", "Failed Parquet write attempts",
                             ["table"], registry=REGISTRY)

# --- what an operator needs beyond those ---------------------------------------------------
ws_connect_failures_total = Counter("ws_connect_failures_total",
                                    "WebSocket connection attempts that failed (refused, "
                                    "timeout, handshake)", ["endpoint"], registry=REGISTRY)
capture_up = Gauge("capture_up", "1 while the capture loop runs", registry=REGISTRY)
messages_total = Counter("messages_total", "WebSocket messages received", ["endpoint"],
                         registry=REGISTRY)
decode_errors_total = Counter("decode_errors_total", "Undecodable messages skipped", ["kind"],
                              registry=REGISTRY)
trade_gaps_detected_total = Counter("trade_gaps_detected_total", "aggTrade id gaps detected",
                                    ["symbol"], registry=REGISTRY)
trade_gaps_healed_total = Counter("trade_gaps_healed_total", "aggTrade id gaps healed by REST",
                                  ["symbol"], registry=REGISTRY)
healed_trades_total = Counter("healed_trades_total", "Trades recovered through REST aggTrades",
                              ["symbol"], registry=REGISTRY)
trade_gaps_open = Gauge("trade_gaps_open", "Detected trade gaps not yet healed", ["symbol"],
                        registry=REGISTRY)
heal_owed_trades = Gauge("heal_owed_trades", "Trade ids owed (missing, to be healed via REST)",
                         ["symbol"], registry=REGISTRY)
heal_owed_requests = Gauge("heal_owed_requests", "REST aggTrades pages (1,000 ids) needed to pay "
                           "every owed trade", registry=REGISTRY)
heal_eta_seconds = Gauge("heal_eta_seconds", "Seconds to pay the owed trades at the REST budget "
                         "(heal_owed_requests x weight / budget)", registry=REGISTRY)
book_gaps_total = Counter("book_gaps_total", "Book pu-chain breaks", ["symbol"], registry=REGISTRY)
book_resyncs_total = Counter("book_resyncs_total", "Local book resyncs (diff-depth mode)",
                             ["symbol"], registry=REGISTRY)
clock_drift_ms = Gauge("clock_drift_ms", "Local clock minus exchange server time (ms)",
                       registry=REGISTRY)
last_message_age_seconds = Gauge("last_message_age_seconds",
                                 "Seconds since the last message per stream kind",
                                 ["symbol", "stream"], registry=REGISTRY)
files_finalised_total = Counter("files_finalised_total", "Raw Parquet files finalised",
                                ["table"], registry=REGISTRY)
parquet_flush_seconds = Histogram("parquet_flush_seconds", "Time to write and finalise one file",
                                  ["table"], registry=REGISTRY)
empty_buckets_total = Counter("empty_buckets_total", "Closed 1-minute buckets with no trade",
                              ["symbol"], registry=REGISTRY)
duplicate_rate = Gauge("duplicate_rate", "Duplicates / received aggTrades since start",
                       ["symbol"], registry=REGISTRY)
# lake on s3:// (capture/publisher.py): raw files waiting on local disk for the object store
spool_files = Gauge("spool_files", "Raw files in the local spool not yet published to the lake",
                    registry=REGISTRY)
spool_bytes = Gauge("spool_bytes", "Bytes of raw files in the local spool not yet published",
                    registry=REGISTRY)
objects_published_total = Counter("objects_published_total",
                                  "Raw files published to the object-store lake", registry=REGISTRY)
publish_errors_total = Counter("publish_errors_total",
                               "Failed attempts to publish a raw file to the object-store lake",
                               registry=REGISTRY)
# capture shards (capture/lease/): 1 while this capture holds its shard's lease; leases lost
lease_held = Gauge("lease_held", "1 while the capture holds its shard's lease (0 without one)",
                   registry=REGISTRY)
lease_lost_total = Counter("lease_lost_total", "Shard leases lost while capturing (the capture "
                           "stopped: fencing)", registry=REGISTRY)


MESSAGE_STREAMS = ("agg_trade", "book")   # the stream label of last_message_age_seconds


def init_capture(symbols: Iterable[str], endpoints: Iterable[str],
                 decode_error_kinds: Iterable[str]) -> None:
    """Create every series of the capture at 0 for each known label value (symbols, raw
    tables, endpoints, decode-error kinds), so ``increase()``/``rate()`` alerts see the first
    event and a capture that never receives anything is visibly stale (docs/monitoring.md)."""
    symbols, endpoints = tuple(symbols), tuple(endpoints)
    tables = tuple(schemas.RAW_SCHEMAS)
    for sym in symbols:
        for fam in (dedup_hits_total, latency_ms, trade_gaps_detected_total,
                    trade_gaps_healed_total, healed_trades_total, book_gaps_total,
                    book_resyncs_total, empty_buckets_total, recv_rate_tps, trade_gaps_open,
                    duplicate_rate, heal_owed_trades):
            fam.labels(sym)
        for table in tables:
            data_rows_total.labels(sym, table)
        for stream in MESSAGE_STREAMS:   # the age since start-up until the first message
            last_message_age_seconds.labels(sym, stream).set(0)
    for ep in endpoints:
        ws_reconnects_total.labels(ep)
        ws_connect_failures_total.labels(ep)
        messages_total.labels(ep)
    for table in tables:
        write_errors_total.labels(table)
        files_finalised_total.labels(table)
        parquet_flush_seconds.labels(table)
    for kind in decode_error_kinds:
        decode_errors_total.labels(kind)


def observe_many(hist, values) -> None:
    """``hist.observe(v)`` for every ``v`` of ``values``, in one vectorised pass.

    Why: the capture observes one latency per trade; at 50k+ msg/s the per-call cost of
    ``Histogram.observe`` (a bound scan and two locked increments) was ~10 % of the capture's
    CPU. This bins the values once per tick and adds each bucket's count in one increment. It
    relies on prometheus_client's histogram child layout (``_upper_bounds``, ``_buckets``,
    ``_sum``); ``test_metrics_batch`` pins the result to ``observe`` one by one."""
    if len(values) == 0:
        return
    arr = np.asarray(values, dtype=np.float64)
    bounds = hist._upper_bounds          # ascending, the last is +Inf
    counts = np.bincount(np.searchsorted(bounds, arr, side="left"), minlength=len(bounds))
    hist._sum.inc(float(arr.sum()))
    buckets = hist._buckets
    for i in np.flatnonzero(counts[:len(bounds)]).tolist():
        buckets[i].inc(int(counts[i]))


def observe_groups(hists: list, groups: list) -> None:
    """``observe_many(h, g)`` for every pair of ``hists`` (children of one histogram family:
    the same buckets) and ``groups`` (lists of values), in one vectorised pass over all of them.

    Why: the exporter observes every symbol's latencies of the last second; at 300 symbols one
    ``observe_many`` per symbol (half a dozen numpy calls on ~10 values) was most of the
    ticker's cost (benchmarks/bench_build.py). ``test_metrics_batch`` pins the result to
    ``observe`` one by one."""
    pairs = [(h, g) for h, g in zip(hists, groups) if len(g)]
    if not pairs:
        return
    flat: list = []
    for _, g in pairs:
        flat += g
    arr = np.asarray(flat, dtype=np.float64)
    bounds = pairs[0][0]._upper_bounds    # ascending, the last is +Inf
    nb = len(bounds) + 1                  # + one column for NaN (counted in no bucket)
    gi = np.repeat(np.arange(len(pairs)), [len(g) for _, g in pairs])
    b = np.searchsorted(bounds, arr, side="left")
    counts = np.bincount(gi * nb + b, minlength=len(pairs) * nb).reshape(len(pairs), nb)
    sums = np.bincount(gi, weights=arr, minlength=len(pairs)).tolist()
    for (h, _), total in zip(pairs, sums):
        h._sum.inc(total)
    rows, cols = np.nonzero(counts[:, :-1])
    for r, c, k in zip(rows.tolist(), cols.tolist(), counts[rows, cols].tolist()):
        pairs[r][0]._buckets[c].inc(k)


class GaugeSeries:
    """One series of a labelled gauge, looked up once and set only when its value changed.

    Why: ``labels()`` takes a lock and builds a key on every call, and the capture's
    once-a-second updates over 300 symbols (exporter, healer, live monitor) made 600–1,500 of
    them a second for values that rarely change (~2 % of the capture's profile samples). A new
    instance always sets its first value, whatever an earlier one left in the gauge."""
    __slots__ = ("series", "value")

    def __init__(self, gauge: Gauge, *labels: str):
        self.series = gauge.labels(*labels)
        self.value: float | None = None

    def set(self, value: float) -> None:
        if value != self.value:
            self.series.set(value)
            self.value = value


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose :data:`REGISTRY` on ``http://host:port/metrics`` (port 0 = disabled)."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
