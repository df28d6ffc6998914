"""WebSocket session rules (sans-I/O): connection paths, stream names, categories and the
``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` / ``GET_PROPERTY``
control messages with Binance's replies and error codes (docs/simulator.md "Protocol served").

Paths: ``/{market,public}/stream?streams=a/b``, ``/{market,public}/ws/<stream>[/<stream>…]``,
legacy ``/stream?streams=…`` and ``/ws/<stream>``. ``/market`` serves only ``aggTrade``;
``/public`` only depth, partial depth and ``bookTicker``; the legacy paths serve all.
Served streams: ``<sym>@aggTrade``, ``<sym>@bookTicker``, ``<sym>@depth@100ms``,
``<sym>@depth{5,10,20}@100ms`` (lower-case symbol). Anything else is refused with code 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..protocol.vocabulary import (AGG_TRADE, BOOK_SPEED, BOOK_TICKER, DIFF, MARKET, PARTIAL,
                                   PARTIAL_LEVELS, PUBLIC, endpoint_of, format_stream, parse_stream)

SYMBOL_RE = re.compile(r"[a-z0-9]{2,20}")
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


class ControlError(Exception):
    """A Binance WS error: reply ``{"code":code,"msg":msg,"id":id}``."""

    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code, self.msg = code, msg


class PathError(Exception):
    """The connection path cannot be served: HTTP ``status`` with a Binance error body."""

    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status, self.msg = status, msg


def served(stream: str) -> bool:
    """One of the served forms, written canonically (lower-case symbol, no extra parts)."""
    sp = parse_stream(stream)
    if sp.kind in (AGG_TRADE, BOOK_TICKER):
        ok = sp.speed is None
    elif sp.kind == DIFF:
        ok = sp.speed == BOOK_SPEED
    else:
        ok = sp.kind == PARTIAL and sp.levels in PARTIAL_LEVELS and sp.speed == BOOK_SPEED
    return (ok and not sp.extra and format_stream(sp) == stream
            and SYMBOL_RE.fullmatch(sp.symbol.lower()) is not None)


def check_stream(stream: Any, category: str | None) -> str:
    """Validate one stream name for an endpoint; returns it or raises ControlError."""
    if not isinstance(stream, str) or not served(stream):
        raise ControlError(2, f"Invalid request: unsupported stream name {stream!r}")
    if category is not None and endpoint_of(stream) != category:
        raise ControlError(2, f"Invalid request: stream {stream} is not served on /{category}; "
                              f"use /{endpoint_of(stream)}")
    return stream


@dataclass
class ConnSpec:
    category: str | None          # None = legacy (all streams)
    combined: bool
    streams: list[str] = field(default_factory=list)


def parse_path(target: str, max_streams: int = 200) -> ConnSpec:
    """Connection target -> ConnSpec; PathError(404/400) if it cannot be served."""
    parts = urlsplit(target)
    segs = [s for s in parts.path.split("/") if s]
    category = None
    if segs and segs[0] in (MARKET, PUBLIC):
        category = segs.pop(0)
    if not segs or segs[0] not in ("stream", "ws"):
        raise PathError(404, f"unknown path {parts.path}")
    if segs[0] == "stream":
        if len(segs) != 1:
            raise PathError(404, f"unknown path {parts.path}")
        q = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw = q.get("streams", "")
        streams = [s for s in raw.split("/") if s]
        combined = True
    else:
        streams = segs[1:]
        combined = False
    streams = list(dict.fromkeys(streams))
    if len(streams) > max_streams:
        raise PathError(400, f"too many streams: {len(streams)} > {max_streams}")
    try:
        for s in streams:
            check_stream(s, category)
    except ControlError as exc:
        raise PathError(400, exc.msg) from None
    return ConnSpec(category, combined, streams)


class Session:
    """Subscription state of one connection; :meth:`handle` answers one control message."""

    def __init__(self, spec: ConnSpec, max_streams: int = 200):
        self.category = spec.category
        self.combined = spec.combined
        self.max_streams = max_streams
        self.streams: dict[str, None] = dict.fromkeys(spec.streams)

    def handle(self, text: str | bytes) -> tuple[bytes, list[str], list[str]]:
        """Returns (reply frame, streams added, streams removed)."""
        req_id: Any = None
        try:
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise ControlError(3, f"Invalid JSON: {exc}") from None
            if not isinstance(msg, dict):
                raise ControlError(3, "Invalid JSON: expected an object")
            req_id = msg.get("id")
            if "method" not in msg:
                raise ControlError(2, "Invalid request: missing field `method`")
            if type(req_id) is not int or req_id < 0:
                req_id = None
                raise ControlError(2, "Invalid request: request ID must be an unsigned integer")
            method = msg["method"]
            if method not in METHODS:
                raise ControlError(2, f"Invalid request: unknown variant `{method}`, expected one "
                                      f"of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                                      f"`SET_PROPERTY`, `GET_PROPERTY`")
            params = msg.get("params", [])
            if not isinstance(params, list):
                raise ControlError(2, "Invalid request: params must be an array")
            added: list[str] = []
            removed: list[str] = []
            result: Any = None
            if method == "SUBSCRIBE":
                new = [check_stream(s, self.category) for s in params]
                fresh = [s for s in dict.fromkeys(new) if s not in self.streams]
                if len(self.streams) + len(fresh) > self.max_streams:
                    raise ControlError(2, f"Invalid request: too many streams "
                                          f"(max {self.max_streams} per connection)")
                for s in fresh:
                    self.streams[s] = None
                added = fresh
            elif method == "UNSUBSCRIBE":
                for s in params:
                    if isinstance(s, str) and s in self.streams:
                        del self.streams[s]
                        removed.append(s)
            elif method == "LIST_SUBSCRIPTIONS":
                result = list(self.streams)
            elif method == "SET_PROPERTY":
                if len(params) != 2 or not isinstance(params[0], str):
                    raise ControlError(2, "Invalid request: property name must be a string")
                if params[0] != "combined":
                    raise ControlError(0, "Unknown property")
                if not isinstance(params[1], bool):
                    raise ControlError(1, "Invalid value type: expected Boolean")
                self.combined = params[1]
            else:  # GET_PROPERTY
                if len(params) != 1 or not isinstance(params[0], str):
                    raise ControlError(2, "Invalid request: property name must be a string")
                if params[0] != "combined":
                    raise ControlError(0, "Unknown property")
                result = self.combined
            return orjson.dumps({"result": result, "id": req_id}), added, removed
        except ControlError as exc:
            return orjson.dumps({"code": exc.code, "msg": exc.msg, "id": req_id}), [], []
