"""What the simulator server serves: the :class:`MarketSource` protocol.

The server (``server.py``) is transport only; everything market-like comes from a source, so
the synthetic market (``market.py``) and replayed recordings (``replay.py``) are interchangeable.

A source owns a *simulated clock* (``server_time_ms``). The server repeatedly asks it for the
messages that became due up to that clock (``poll``) and fans them out to the subscribed
clients; REST calls are answered from the same source (``agg_trades``, ``depth_snapshot``,
``exchange_info``, ``ticker_24hr``), so REST ``aggTrades`` is the ground truth of every trade ever emitted.

Contract of :meth:`MarketSource.poll`:

* returns :class:`Message` objects in non-decreasing ``ts_ms`` order, each message exactly once
  over the life of the source (a later poll never returns an earlier message again);
* ``streams`` is the set of stream names at least one client is subscribed to; a source may
  use it to skip building payloads nobody receives (the synthetic market still advances its
  trades and book). Returning messages for other streams is allowed; the server drops them;
* stream names are Binance's, lower-case symbol: ``btcusdt@aggTrade``, ``btcusdt@bookTicker``,
  ``btcusdt@depth@100ms`` (diff), ``btcusdt@depth{5,10,20}@100ms`` (partial);
* ``data`` is the exact payload dict (docs/simulator.md); ``raw`` optionally carries its orjson/JSON
  encoding so the server never serialises a message twice (it builds the combined envelope
  ``{"stream":…,"data":<raw>}`` by concatenation). A source may leave ``data`` None when it
  sets ``raw`` (the synthetic market renders depth payloads straight to bytes); use
  :func:`payload` to get the dict either way.

Contract of :meth:`MarketSource.agg_trades` (Binance ``GET /fapi/v1/aggTrades`` semantics,
parameters already validated by the server): ``from_id`` → trades with ``a >= from_id``
ascending; else ``start_ms``/``end_ms`` (inclusive, on ``T``) → trades in the window ascending;
else the most recent ``limit`` trades. Items are ``{"a","p","q","f","l","T","m"}`` with
``p``/``q`` decimal strings. Only trades already emitted (``T <= server_time_ms()``) are
visible. Unknown symbol → ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson


@dataclass(slots=True)
class Message:
    """One outgoing market message: ``stream`` name, payload ``data``, emission time ``ts_ms``
    (the payload's ``E``) and optionally the payload pre-encoded as JSON bytes (``raw``)."""
    stream: str
    data: dict[str, Any] | None
    ts_ms: int
    raw: bytes | None = None


def payload(m: Message) -> dict[str, Any]:
    """The payload dict of ``m`` (decoded from ``raw`` when the source left ``data`` None)."""
    if m.data is None:
        assert m.raw is not None, "a Message needs data or raw"
        m.data = orjson.loads(m.raw)
    return m.data


@runtime_checkable
class MarketSource(Protocol):
    """A market the simulator can serve (see module docstring for the exact contracts)."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """Upper-case symbols this source knows (``BTCUSDT``...)."""
        ...

    def server_time_ms(self) -> int:
        """The simulated exchange clock now (ms since epoch)."""
        ...

    def poll(self, now_ms: int, streams: Collection[str]) -> list[Message]:
        """Messages due in (previous poll, ``now_ms``], time-ordered."""
        ...

    def agg_trades(self, symbol: str, from_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """REST aggTrades (ground truth)."""
        ...

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """REST depth: ``{"lastUpdateId","E","T","bids":[[p,q]..],"asks":[[p,q]..]}`` (strings),
        consistent with the diff stream (``U <= lastUpdateId <= u`` for some later event)."""
        ...

    def exchange_info(self) -> dict[str, Any]:
        """REST exchangeInfo: ``{"timezone","serverTime","rateLimits","symbols":[{"symbol",
        "status","pricePrecision","quantityPrecision","filters":[{"filterType":"PRICE_FILTER",
        "tickSize":…},…]}]}``."""
        ...

    def ticker_24hr(self, symbol: str) -> dict[str, Any]:
        """REST ticker/24hr of one symbol: ``{"symbol","volume","quoteVolume","lastPrice",
        "count","openTime","closeTime",…}`` (decimal strings; sim/ticker.py)."""
        ...
