"""The Prometheus exporter of the capture (docs/monitoring.md): its endpoint and the
once-a-second update of the gauges and counters from the counters the capture keeps anyway.

Split out of ``capture/runner.py``; it only reads the loop-owned state (on the loop).
"""

from __future__ import annotations

from typing import Any

from ..monitoring import metrics
from .ops import OpsRecorder


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
        for sym, state in self.states.items():
            lat, state.lat = state.lat, []
            metrics.observe_many(state.lat_hist, lat)
            total = state.ws_count          # the live feed (REST heals come in bursts)
            state.rate.append((sec, total))
            while state.rate and state.rate[0][0] < sec - 10:
                state.rate.popleft()
            span = max(1, sec - state.rate[0][0])
            metrics.recv_rate_tps.labels(sym).set((total - state.rate[0][1]) / span)
            # until the first message: the age of the capture (never connected = stale)
            started = self.started_ms
            metrics.last_message_age_seconds.labels(sym, "agg_trade").set(
                (now_ms - (state.last_trade_recv or started)) / 1000)
            metrics.last_message_age_seconds.labels(sym, "book").set(
                (now_ms - (state.last_book_recv or started)) / 1000)
            closed = now_ms // 60_000 - 1        # live 1-minute buckets without any trade
            if closed > state.checked_min:
                empty = sum(1 for m in range(state.checked_min + 1, closed + 1)
                            if m not in state.trade_minutes)
                if empty:
                    metrics.empty_buckets_total.labels(sym).inc(empty)
                state.trade_minutes = {m for m in state.trade_minutes if m > closed}
                state.checked_min = closed
            received = state.ws_count + state.dups
            metrics.duplicate_rate.labels(sym).set(state.dups / received if received else 0.0)
        for sym, state in self.states.items():
            # dedup_hits_total is a counter: add what is new since the last tick
            prev = self._dedup_seen.get(sym, 0)
            if state.dups > prev:
                metrics.dedup_hits_total.labels(sym).inc(state.dups - prev)
                self._dedup_seen[sym] = state.dups

    def stop_server(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
