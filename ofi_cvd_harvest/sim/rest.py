"""REST routes of the simulator (sans-I/O): a GET target in, ``(status, headers, body)`` out.

Binance USDT-M semantics (docs/simulator.md): parameter validation with Binance's error JSON
(``{"code":-11xx,"msg":…}``, HTTP 400), request weights (aggTrades 20, depth 2…20, ticker/24hr
40 for all symbols and 1 for one, time and exchangeInfo 1; protocol/vocabulary.py) accounted per wall-clock minute with the ``X-MBX-USED-WEIGHT-1m`` header, and
HTTP 429 (``code -1003``, ``Retry-After``) once the limit is exceeded.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..protocol.vocabulary import (DEPTH_LIMIT_WEIGHTS, DEPTH_PATH, EXCHANGE_INFO_PATH,
                                   TICKER_24HR_PATH, depth_weight, request_weight,
                                   ticker_24hr_weight)
from .listings import Listings
from .source import MarketSource

HOUR_MS = 3_600_000
_INT_RE = re.compile(r"^[0-9]{1,20}$")


class ErrorReply(Exception):
    """A Binance error *response* the server sends: HTTP ``status`` with ``{"code","msg"}``
    (the client's own failure type is ``exchange.rest.ErrorReply``)."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class WeightLimiter:
    """Request weight used in the current wall-clock minute."""

    def __init__(self, limit: int = 2400, clock: Callable[[], float] = time.time):
        self.limit = limit
        self.clock = clock
        self.minute = -1
        self.used = 0

    def charge(self, weight: int) -> tuple[bool, int, int]:
        """Add ``weight``; returns (allowed, used this minute, seconds until the next minute)."""
        now = self.clock()
        minute = int(now // 60)
        if minute != self.minute:
            self.minute, self.used = minute, 0
        self.used += weight
        retry = max(1, int(60 - now % 60))
        return self.used <= self.limit, self.used, retry


def _param_int(q: dict[str, str], name: str) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    if not _INT_RE.match(v):
        raise ErrorReply(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                     f"legal range is '^[0-9]{{1,20}}$'.")
    return int(v)


def _symbol(q: dict[str, str], source: MarketSource) -> str:
    s = q.get("symbol")
    if not s:
        raise ErrorReply(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                    "or malformed.")
    if s.upper() != s or s not in source.symbols:
        raise ErrorReply(400, -1121, "Invalid symbol.")
    return s


def _weight(path: str, q: dict[str, str]) -> int:
    if path == TICKER_24HR_PATH:
        return ticker_24hr_weight(bool(q.get("symbol")))
    if path == DEPTH_PATH:
        try:
            return depth_weight(int(q.get("limit", "500")))
        except ValueError:
            return DEPTH_LIMIT_WEIGHTS[5]
    return request_weight(path)


def _tickers(q: dict[str, str], source: MarketSource, listings: Listings) -> Any:
    """ticker/24hr: one object for ``symbol=``, else a list of every listed contract's."""
    now = source.server_time_ms()
    if "symbol" in q:
        delivery = listings.ticker(q["symbol"], now) if q["symbol"] else None
        return delivery if delivery is not None else source.ticker_24hr(_symbol(q, source))
    rows = [source.ticker_24hr(sym) for sym in source.symbols]
    return rows + [listings.ticker(sym, now) for sym in listings.delivery_symbols(now)]


def route(target: str, source: MarketSource, weight_limit: int = 2400,
          listings: Listings | None = None) -> tuple[int, int, Any]:
    """Answer one GET ``target`` (path + query): returns (status, weight, JSON-able body).
    Raises :class:`ErrorReply` for Binance errors. ``listings``: statuses and delivery
    contracts of exchangeInfo and ticker/24hr (sim/listings.py; default: all trading)."""
    listings = listings if listings is not None else Listings()
    parts = urlsplit(target)
    path = parts.path.rstrip("/") or "/"
    q = dict(parse_qsl(parts.query, keep_blank_values=True))
    weight = _weight(path, q)
    if path == "/fapi/v1/time":
        return 200, weight, {"serverTime": source.server_time_ms()}
    if path == "/fapi/v1/ping":
        return 200, weight, {}
    if path == TICKER_24HR_PATH:
        return 200, weight, _tickers(q, source, listings)
    if path == EXCHANGE_INFO_PATH:
        info = listings.exchange_info(source.exchange_info(), source.server_time_ms())
        info["serverTime"] = source.server_time_ms()
        info["rateLimits"] = [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": weight_limit}]
        return 200, weight, info
    if path == "/fapi/v1/aggTrades":
        sym = _symbol(q, source)
        limit = _param_int(q, "limit")
        limit = 500 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise ErrorReply(400, -1130, "Data sent for parameter 'limit' is not valid.")
        from_id = _param_int(q, "fromId")
        start = _param_int(q, "startTime")
        end = _param_int(q, "endTime")
        if start is not None and end is not None:
            if end < start:
                raise ErrorReply(400, -1130, "Data sent for parameter 'endTime' is not valid.")
            if end - start > HOUR_MS:
                raise ErrorReply(400, -1127, "More than 1 hours between startTime and endTime.")
        if from_id is None:
            if start is not None and end is None:
                end = start + HOUR_MS
            elif end is not None and start is None:
                start = end - HOUR_MS
        return 200, weight, source.agg_trades(sym, from_id=from_id, start_ms=start, end_ms=end,
                                              limit=limit)
    if path == "/fapi/v1/depth":
        sym = _symbol(q, source)
        limit = _param_int(q, "limit")
        limit = 500 if limit is None else limit
        if limit not in DEPTH_LIMIT_WEIGHTS:
            raise ErrorReply(400, -1130, "Data sent for parameter 'limit' is not valid.")
        return 200, weight, source.depth_snapshot(sym, limit)
    raise ErrorReply(404, -1000, f"Unknown path {path}")


class RestApp:
    """Routes + weight limiter + REST faults: ``handle(target) -> (status, headers, body)``."""

    def __init__(self, source: MarketSource, weight_limit: int = 2400, faults: Any = None,
                 clock: Callable[[], float] = time.time, listings: Listings | None = None):
        self.source = source
        self.listings = listings if listings is not None else Listings()
        self.limiter = WeightLimiter(weight_limit, clock)
        self.faults = faults
        self.stats = {"requests": 0, "http429": 0, "http5xx": 0, "errors": 0}

    def handle(self, target: str) -> tuple[int, list[tuple[str, str]], bytes]:
        self.stats["requests"] += 1
        path = urlsplit(target).path
        q = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        allowed, used, retry = self.limiter.charge(_weight(path.rstrip("/"), q))
        headers = [("Content-Type", "application/json"), ("X-MBX-USED-WEIGHT-1m", str(used))]
        forced = self.faults.pick() if self.faults is not None else None
        if not allowed or forced == 429:
            self.stats["http429"] += 1
            headers.append(("Retry-After", str(retry)))
            return 429, headers, orjson.dumps({
                "code": -1003, "msg": f"Too many requests; current limit of IP is "
                                      f"{self.limiter.limit} requests per minute. Please use "
                                      f"WebSocket Streams for live updates to avoid polling the API."})
        if forced is not None:
            self.stats["http5xx"] += 1
            return forced, headers, orjson.dumps({
                "code": -1001, "msg": "Internal error; unable to process your request. "
                                      "Please try again."})
        try:
            status, _, body = route(target, self.source, self.limiter.limit, self.listings)
        except ErrorReply as exc:
            self.stats["errors"] += 1
            return exc.status, headers, orjson.dumps({"code": exc.code, "msg": exc.msg})
        return status, headers, orjson.dumps(body)
