"""The Prometheus exporter of the capture (docs/monitoring.md): its endpoint and the
once-a-second update of the gauges and counters from the counters the capture keeps anyway.

Split out of ``capture/runner.py``; it only reads the loop-owned state (on the loop). At 300
symbols it runs once a second over every symbol, so the per-symbol series are looked up once,
a gauge is set only when its value changed, and the latencies are binned in one pass.
"""

from __future__ import annotations

from typing import Any

from ..monitoring import metrics
from .ops import OpsRecorder


class _Series:
    """One symbol's series, looked up once (``labels()`` takes a lock and builds a key per call:
    at 300 symbols 1,500 lookups a second); the rate gauges are set only when they changed."""
    __slots__ = ("rate", "age_trade", "age_book", "dup_rate", "dedup", "empty")

    def __init__(self, sym: str):
        self.rate = metrics.GaugeSeries(metrics.recv_rate_tps, sym)
        self.age_trade = metrics.last_message_age_seconds.labels(sym, "agg_trade")
        self.age_book = metrics.last_message_age_seconds.labels(sym, "book")
        self.dup_rate = metrics.GaugeSeries(metrics.duplicate_rate, sym)
        self.dedup = metrics.dedup_hits_total.labels(sym)
        self.empty = metrics.empty_buckets_total.labels(sym)


class Exporter:
    def __init__(self, settings: Any, log: Any, ops: OpsRecorder, messages: dict[str, int],
                 states: dict, started_ms: int):
        self.settings = settings
        self.log = log
        self.ops = ops
        self.messages = messages      # the capture's per-endpoint frame counts (same dict)
        self.states = states
        self.started_ms = started_ms
        self._msg_reported: dict[str, int] = {}
        self._dedup_seen: dict[str, int] = {}
        self._series: dict[str, _Series] = {}
        self._metrics_server = None

    def start_server(self) -> None:
        port = self.settings.prometheus_port
        if not port:
            return
        try:
            from prometheus_client import start_http_server
            self._metrics_server, _ = start_http_server(port, addr=self.settings.prometheus_host,
                                                        registry=metrics.REGISTRY)
            self.log.info("metrics on http://%s:%d/metrics", self.settings.prometheus_host, port)
        except OSError as exc:
            self.log.warning("metrics endpoint on port %d unavailable: %s", port, exc)
            self.ops.emit("metrics_unavailable", {"port": port, "error": str(exc)[:200]})

    def update(self, now_ms: int) -> None:
        for ep, n in self.messages.items():
            d = n - self._msg_reported.get(ep, 0)
            if d:
                metrics.messages_total.labels(ep).inc(d)
                self._msg_reported[ep] = n
        sec = now_ms // 1000
        hists, lats = [], []
        started = self.started_ms
        closed = now_ms // 60_000 - 1        # live 1-minute buckets without any trade
        for sym, state in self.states.items():
            ser = self._series.get(sym)
            if ser is None:
                ser = self._series[sym] = _Series(sym)
            if state.lat:
                hists.append(state.lat_hist)
                lats.append(state.lat)
                state.lat = []
            total = state.ws_count          # the live feed (REST heals come in bursts)
            rate = state.rate
            rate.append((sec, total))
            while rate[0][0] < sec - 10:
                rate.popleft()
            span = max(1, sec - rate[0][0])
            tps = (total - rate[0][1]) / span
            ser.rate.set(tps)
            # until the first message: the age of the capture (never connected = stale)
            ser.age_trade.set((now_ms - (state.last_trade_recv or started)) / 1000)
            ser.age_book.set((now_ms - (state.last_book_recv or started)) / 1000)
            if closed > state.checked_min:
                empty = sum(1 for m in range(state.checked_min + 1, closed + 1)
                            if m not in state.trade_minutes)
                if empty:
                    ser.empty.inc(empty)
                state.trade_minutes = {m for m in state.trade_minutes if m > closed}
                state.checked_min = closed
            dups = state.dups
            received = state.ws_count + dups
            ser.dup_rate.set(dups / received if received else 0.0)
            # dedup_hits_total is a counter: add what is new since the last tick
            prev = self._dedup_seen.get(sym, 0)
            if dups > prev:
                ser.dedup.inc(dups - prev)
                self._dedup_seen[sym] = dups
        metrics.observe_groups(hists, lats)   # every symbol's latencies in one pass

    def stop_server(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
