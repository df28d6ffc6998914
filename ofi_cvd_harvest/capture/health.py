"""Health: the clock check, the symbol check and the error budget (docs/capture.md).

Split out of ``capture/runner.py``: periodic REST checks that only log and emit ops events, and
the budget that stops the capture (``fatal`` + the stop event) when errors pile up.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from ..exchange.rest import RestClient, RestError
from ..monitoring import metrics
from ..protocol.decode import DecodeError
from ..protocol.plausible import TimeWindow
from .ops import OpsRecorder


class CaptureError(RuntimeError):
    """The capture stopped on purpose because it cannot continue safely (e.g. error budget)."""


class Health:
    def __init__(self, settings: Any, rest: RestClient, window: TimeWindow, ops: OpsRecorder,
                 log: Any, stop: asyncio.Event):
        self.settings = settings
        self.rest = rest
        self.window = window
        self.ops = ops
        self.log = log
        self._stop = stop
        self._errors: deque[float] = deque()
        self.fatal: BaseException | None = None

    def count_error(self) -> None:
        now = time.monotonic()
        e = self._errors
        e.append(now)
        while e and now - e[0] > 3600:
            e.popleft()
        if len(e) > self.settings.max_errors_per_hour and self.fatal is None:
            self.fatal = CaptureError(
                f"error budget exceeded: {len(e)} errors in the last hour "
                f"(max_errors_per_hour={self.settings.max_errors_per_hour}); stopping")
            self.log.error("%s", self.fatal)
            self.ops.emit("error_budget_exceeded", {"errors_last_hour": len(e),
                                                    "limit": self.settings.max_errors_per_hour})
            self._stop.set()

    async def clock_check(self) -> None:
        try:
            server = await self.rest.server_time()
        except (RestError, DecodeError, OSError) as exc:
            self.log.warning("clock check failed: %s", exc)
            self.ops.emit("clock_check_failed", {"error": str(exc)[:200]})
            return
        t0, t1 = self.rest.last_timing   # excludes waiting for the REST lock / pacing
        drift = (t0 + t1) / 2 * 1000 - server
        metrics.clock_drift_ms.set(drift)
        self.window.follow(-drift)   # frame times must now lie within a day of the exchange's
        meta = {"drift_ms": round(drift, 1), "rtt_ms": round((t1 - t0) * 1000, 1),
                "server_time_ms": server, "max_drift_ms": self.settings.max_clock_drift_ms}
        if abs(drift) > self.settings.max_clock_drift_ms:
            self.log.warning("clock drift %.0f ms vs exchange (limit %.0f ms)", drift,
                             self.settings.max_clock_drift_ms)
            self.ops.emit("clock_drift", meta)
        else:
            self.ops.emit("clock_check", meta)

    async def check_symbols(self) -> None:
        """A symbol the exchange does not list (a typo passes the syntax check) would just
        stay silent for 72 h: say so loudly at start (not fatal: listings change)."""
        try:
            info = await self.rest.exchange_info()
            listed = {d.get("symbol"): d.get("status") for d in info.get("symbols", [])
                      if isinstance(d, dict)}
        except (RestError, DecodeError, OSError, ValueError, AttributeError) as exc:
            self.log.warning("exchangeInfo check skipped: %s", exc)
            return
        for sym in self.settings.symbols:
            status = listed.get(sym)
            if status != "TRADING":
                why = "not listed" if status is None else f"status {status}"
                self.log.error("%s: %s by exchangeInfo; no data will arrive for it", sym, why)
                self.ops.emit("symbol_unavailable", {"status": status}, symbol=sym)
