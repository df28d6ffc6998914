"""Connection planning for the split USDT-M endpoints; the stream names themselves and their
endpoint rule live in :mod:`.vocabulary` (re-exported here for existing callers).

Since 2026-04 trades live on ``/market`` and book streams on ``/public``; a connection carries
at most ``max_streams_per_connection`` (≤ 200) streams, so more symbols mean more connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocabulary import (MARKET, PUBLIC, agg_trade_stream, book_ticker_stream,
                         diff_depth_stream, endpoint_of, parse_stream,
                         partial_depth_stream)

__all__ = ["MARKET", "PUBLIC", "agg_trade_stream", "book_ticker_stream", "diff_depth_stream",
           "endpoint_of", "partial_depth_stream", "combined_url", "ConnectionPlan",
           "plan_connections"]


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
            syms = tuple(dict.fromkeys(parse_stream(s).symbol for s in chunk))
            plans.append(ConnectionPlan(ep, chunk, combined_url(ws_base_url, ep, list(chunk)), syms))
    return plans
