"""The universe from the exchange: every ``TRADING`` perpetual of ``exchangeInfo`` with its 24 h
quote volume from ``ticker/24hr`` (docs/deploy.md "Capture shards").

Both answers are read defensively: a symbol name becomes a directory name, so a name outside
``^[A-Z0-9]{2,20}$`` is left out (and reported), a volume that is not a finite number ≥ 0
counts as 0, and an answer of the wrong shape is one clear :class:`UniverseError`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from ..protocol.vocabulary import PERPETUAL, TRADING
from ..settings import SYMBOL_RE


class UniverseError(RuntimeError):
    """The exchange's answer cannot give a universe (unreachable, or not the expected shape)."""


@dataclass(frozen=True)
class Universe:
    volumes: dict[str, float]          # TRADING perpetual -> 24 h quote volume (USDT)
    skipped: tuple[str, ...] = ()      # names refused as directory names


def tradable(info: Any) -> tuple[list[str], list[str]]:
    """(TRADING perpetuals, refused names) of an exchangeInfo answer."""
    rows = info.get("symbols") if isinstance(info, dict) else None
    if not isinstance(rows, list):
        raise UniverseError("exchangeInfo answer has no 'symbols' list")
    good, bad = [], []
    for row in rows:
        if not isinstance(row, dict):
            continue
        if row.get("status") != TRADING or row.get("contractType") != PERPETUAL:
            continue
        sym = row.get("symbol")
        if isinstance(sym, str) and SYMBOL_RE.match(sym):
            good.append(sym)
        else:
            bad.append(repr(sym)[:40])
    return sorted(set(good)), bad


def _number(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) and x >= 0 else 0.0


def quote_volumes(tickers: Any, symbols: list[str]) -> dict[str, float]:
    """{symbol: quoteVolume} for ``symbols`` from a ticker/24hr list (a missing one: 0)."""
    if not isinstance(tickers, list):
        raise UniverseError("ticker/24hr answer is not a list")
    seen = {t["symbol"]: _number(t.get("quoteVolume")) for t in tickers
            if isinstance(t, dict) and isinstance(t.get("symbol"), str)}
    return {s: seen.get(s, 0.0) for s in symbols}


def universe(info: Any, tickers: Any) -> Universe:
    symbols, bad = tradable(info)
    return Universe(quote_volumes(tickers, symbols), tuple(bad))


def fetch_universe(rest_base_url: str, weight_limit_per_min: int = 2400,
                   timeout: float = 10.0, attempts: int = 3) -> Universe:
    """exchangeInfo + ticker/24hr (weight 41) from ``rest_base_url``; blocking (a sensor
    asks once: ``attempts=1`` never sleeps out a 429 inside a tick; the CLI retries).
    Raises :class:`UniverseError` with one line when it cannot."""
    from ..exchange.rest import RestClient, RestError

    async def both() -> tuple[Any, Any]:
        client = RestClient(rest_base_url, weight_limit_per_min, timeout=timeout, max_attempts=attempts,
                            backoff_base=0.2, backoff_max=1.0)
        return await client.exchange_info(), await client.ticker_24hr()

    try:
        info, tickers = asyncio.run(both())
    except (RestError, ValueError) as exc:   # orjson's JSONDecodeError is a ValueError
        raise UniverseError(f"universe from {rest_base_url}: {exc}") from None
    return universe(info, tickers)
