"""Stream names and connection planning for the split USDT-M endpoints (SPEC §4.1).

Since 2026-04 trades live on ``/market`` and book streams on ``/public``; a connection carries
at most ``max_streams_per_connection`` (≤ 200) streams, so more symbols mean more connections.
"""

from __future__ import annotations

from dataclasses import dataclass

MARKET = "market"   # aggTrade, markPrice, kline, ticker
PUBLIC = "public"   # depth, partial depth, bookTicker


def agg_trade_stream(symbol: str) -> str:
    return f"{symbol.lower()}@aggTrade"


def partial_depth_stream(symbol: str, levels: int = 10) -> str:
    return f"{symbol.lower()}@depth{levels}@100ms"


def diff_depth_stream(symbol: str) -> str:
    return f"{symbol.lower()}@depth@100ms"


def book_ticker_stream(symbol: str) -> str:
    return f"{symbol.lower()}@bookTicker"


def endpoint_of(stream: str) -> str:
    """Which endpoint serves ``stream`` (``market`` or ``public``)."""
    kind = stream.split("@", 1)[1] if "@" in stream else ""
    return PUBLIC if kind.startswith(("depth", "bookTicker")) else MARKET


def combined_url(ws_base_url: str, endpoint: str, streams: list[str]) -> str:
    """``{base}/{endpoint}/stream?streams=a/b/c`` (base without trailing slash)."""
    if not streams:
        raise ValueError("a connection needs at least one stream")
    return f"{ws_base_url.rstrip('/')}/{endpoint}/stream?streams={'/'.join(streams)}"


@dataclass(frozen=True)
class ConnectionPlan:
    """One WebSocket connection: its endpoint, streams, URL and the symbols it carries."""
    endpoint: str
    streams: tuple[str, ...]
    url: str
    symbols: tuple[str, ...]


def plan_connections(ws_base_url: str, streams: list[str], max_per_conn: int = 200
                     ) -> list[ConnectionPlan]:
    """Group ``streams`` by endpoint, then into chunks of ≤ ``max_per_conn``, keeping order."""
    if not 1 <= max_per_conn <= 200:
        raise ValueError("max_per_conn must be 1..200")
    by_ep: dict[str, list[str]] = {}
    for s in dict.fromkeys(streams):  # de-duplicate, keep order
        by_ep.setdefault(endpoint_of(s), []).append(s)
    plans = []
    for ep in (MARKET, PUBLIC):
        group = by_ep.get(ep, [])
        for i in range(0, len(group), max_per_conn):
            chunk = tuple(group[i:i + max_per_conn])
            syms = tuple(dict.fromkeys(s.split("@", 1)[0].upper() for s in chunk))
            plans.append(ConnectionPlan(ep, chunk, combined_url(ws_base_url, ep, list(chunk)), syms))
    return plans
