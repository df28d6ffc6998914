"""REST client for the USDT-M endpoints the capture needs (docs/simulator.md), stdlib HTTP only.

urllib runs in a worker thread (``asyncio.to_thread``) so the event loop never blocks.
Requests are serialised and paced: we track our own weight over the trailing minute and the
server's ``X-MBX-USED-WEIGHT-1m``, stay under ``weight_limit_per_min`` with a safety margin,
honour ``Retry-After`` on 429/418, and back off exponentially (jittered) on 5xx and
connection errors. Other 4xx are caller errors and are raised at once.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from typing import Any

import orjson

from ..protocol.decode import depth_snapshot, rest_agg_trades
from ..protocol.plausible import STATIC
from ..protocol.records import AggTrade, DepthSnapshot
from ..protocol.vocabulary import (AGG_TRADES_PATH, EXCHANGE_INFO_PATH, TICKER_24HR_PATH,
                                   depth_weight, request_weight, ticker_24hr_weight)

class RestError(RuntimeError):
    """The client's failure: a request failed for good (non-retryable status, or attempts
    exhausted). Not the simulator's ``sim.rest.ErrorReply``, which is a response it sends."""

    def __init__(self, msg: str, status: int | None = None):
        super().__init__(msg)
        self.status = status


class RestClient:
    def __init__(self, base_url: str, weight_limit_per_min: int = 2400, *, timeout: float = 10.0,
                 max_attempts: int = 5, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 safety: float = 0.8, seed: int | None = None):
        self.base_url = base_url.rstrip("/")
        self.limit = weight_limit_per_min
        self.budget = max(1, int(weight_limit_per_min * safety))
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.used_weight_1m = 0          # last X-MBX-USED-WEIGHT-1m seen
        self.requests = 0
        self.throttled = 0               # 429/418 answers
        self.server_errors = 0           # 5xx / connection errors
        self.waited_sec = 0.0            # time spent pacing
        self.last_timing = (0.0, 0.0)    # (sent, answered) of the last request, wall clock
        self._own: deque[tuple[float, int]] = deque()
        self._header_minute = -1
        self._lock = asyncio.Lock()
        self._rng = random.Random(seed)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- pacing -------------------------------------------------------------------------------
    def _pace_delay(self, weight: int, now: float) -> float:
        own = self._own
        while own and now - own[0][0] >= 60.0:
            own.popleft()
        delay = 0.0
        used = sum(w for _, w in own)
        if used + weight > self.budget and own:
            acc = used
            for t, w in own:          # wait until enough of our own weight has aged out
                acc -= w
                if acc + weight <= self.budget:
                    delay = max(delay, t + 60.0 - now)
                    break
        if int(now // 60) == self._header_minute and self.used_weight_1m + weight > self.budget:
            delay = max(delay, 60.0 - (now % 60.0) + 0.05)  # server window resets per minute
        return delay

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_base * 2 ** attempt)
        return base * (0.5 + self._rng.random() * 0.5)

    # -- requests -----------------------------------------------------------------------------
    def _fetch(self, url: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(url, headers={"User-Agent": "ofi-cvd-harvest"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read() if exc.fp else b""
            return exc.code, dict(exc.headers.items()) if exc.headers else {}, body

    async def get(self, path: str, params: dict[str, Any] | None = None, weight: int = 1) -> bytes:
        """GET ``path`` with pacing and retries; returns the body of a 2xx answer."""
        q = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base_url}{path}" + (f"?{q}" if q else "")
        last_err = ""
        async with self._lock:
            for attempt in range(self.max_attempts):
                delay = self._pace_delay(weight, time.time())
                if delay > 0:
                    self.waited_sec += delay
                    await asyncio.sleep(delay)
                self._own.append((time.time(), weight))
                self.requests += 1
                try:
                    t_send = time.time()
                    status, headers, body = await asyncio.to_thread(self._fetch, url)
                    self.last_timing = (t_send, time.time())  # wall clock around the request
                except (urllib.error.URLError, OSError, TimeoutError) as exc:
                    self.server_errors += 1
                    last_err = f"{type(exc).__name__}: {exc}"
                    if attempt + 1 < self.max_attempts:
                        await asyncio.sleep(self._backoff(attempt))
                    continue
                used = {k.lower(): v for k, v in headers.items()}.get("x-mbx-used-weight-1m")
                if used is not None and used.isdigit():
                    self.used_weight_1m = int(used)
                    self._header_minute = int(time.time() // 60)
                if 200 <= status < 300:
                    return body
                last_err = f"HTTP {status}: {body[:200]!r}"
                if status in (418, 429):
                    self.throttled += 1
                    ra = {k.lower(): v for k, v in headers.items()}.get("retry-after", "")
                    wait = float(ra) if ra.replace(".", "", 1).isdigit() else self._backoff(attempt + 2)
                    if attempt + 1 < self.max_attempts:
                        await asyncio.sleep(min(wait, 120.0))
                    continue
                if status >= 500:
                    self.server_errors += 1
                    if attempt + 1 < self.max_attempts:
                        await asyncio.sleep(self._backoff(attempt))
                    continue
                raise RestError(f"GET {path}: {last_err}", status)
        raise RestError(f"GET {path}: gave up after {self.max_attempts} attempts ({last_err})")

    async def get_json(self, path: str, params: dict[str, Any] | None = None, weight: int = 1) -> Any:
        return orjson.loads(await self.get(path, params, weight))

    # -- endpoints ----------------------------------------------------------------------------
    async def server_time(self) -> int:
        d = await self.get_json("/fapi/v1/time", weight=request_weight("/fapi/v1/time"))
        if type(d) is not dict or type(d.get("serverTime")) is not int:
            raise RestError(f"bad /fapi/v1/time answer: {str(d)[:100]}")
        if not STATIC.admits(d["serverTime"]):   # the capture centres its frame window on it
            raise RestError(f"implausible /fapi/v1/time answer: {str(d)[:100]}")
        return d["serverTime"]

    async def exchange_info(self) -> dict:
        return await self.get_json(EXCHANGE_INFO_PATH, weight=request_weight(EXCHANGE_INFO_PATH))

    async def ticker_24hr(self, symbol: str | None = None) -> Any:
        """24 h statistics: a list of objects for every symbol (weight 40), or one object for
        ``symbol`` (weight 1). Decoding is the caller's (universe/market.py)."""
        return await self.get_json(TICKER_24HR_PATH, {"symbol": symbol},
                                   weight=ticker_24hr_weight(symbol is not None))

    async def agg_trades(self, symbol: str, *, from_id: int | None = None,
                         start_time: int | None = None, end_time: int | None = None,
                         limit: int = 1000) -> list[AggTrade]:
        limit = max(1, min(1000, int(limit)))
        body = await self.get("/fapi/v1/aggTrades",
                              {"symbol": symbol, "fromId": from_id, "startTime": start_time,
                               "endTime": end_time, "limit": limit},
                              weight=request_weight(AGG_TRADES_PATH))
        return rest_agg_trades(symbol, body)

    async def depth(self, symbol: str, limit: int = 1000) -> DepthSnapshot:
        body = await self.get("/fapi/v1/depth", {"symbol": symbol, "limit": limit},
                              weight=depth_weight(limit))
        return depth_snapshot(body)
