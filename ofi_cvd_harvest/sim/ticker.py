"""``GET /fapi/v1/ticker/24hr`` rows of the synthetic market (docs/simulator.md).

The simulator does not run a day before it serves, so the 24 h statistics are the market model's
*expected* day, not a replay of one: trades = rate × 86,400 s, base volume = trades × the mean
of the model's log-normal trade size (median · e^{σ²/2}, capped at the largest trade), quote
volume = base volume × price. A per-(seed, symbol) day factor (log-normal, σ = 0.25) makes two
seeds different days while one seed always gives the same numbers, so a shard plan made from
them is reproducible (docs/deploy.md "Capture shards"). Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from .symbols import SymbolSpec, fmt_fixed

DAY_MS = 86_400_000
DAY_FACTOR_SIGMA = 0.25


def day_factor(seed: int, symbol: str) -> float:
    """This seed's activity of ``symbol`` relative to its calibrated rate (median 1)."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), 24])
    return float(math.exp(DAY_FACTOR_SIGMA * rng.standard_normal()))


def mean_size(spec: SymbolSpec) -> float:
    """Mean aggTrade quantity of the model (log-normal mean, never above the largest trade)."""
    return min(spec.size_median * math.exp(spec.size_sigma ** 2 / 2.0), spec.size_max)


def ticker_row(spec: SymbolSpec, seed: int, now_ms: int, last_price: str | None = None,
               last_id: int | None = None) -> dict[str, Any]:
    """One Binance ticker/24hr object for ``spec`` at ``now_ms``; ``last_price`` / ``last_id``
    come from the trades emitted so far (the calibrated price and a made-up id before any)."""
    count = int(round(spec.trade_rate * 86_400 * day_factor(seed, spec.symbol)))
    lots = int(round(count * mean_size(spec) / spec.lot_size))
    volume = lots * spec.lot_size
    open_px = fmt_fixed(int(round(spec.price / spec.tick_size)), spec.tick_decimals)
    last = last_price if last_price is not None else open_px
    change = float(last) - float(open_px)
    last_id = count if last_id is None else int(last_id)
    return {
        "symbol": spec.symbol,
        "priceChange": f"{change:.{spec.tick_decimals}f}",
        "priceChangePercent": f"{100.0 * change / float(open_px):.3f}",
        "weightedAvgPrice": open_px,
        "lastPrice": last,
        "lastQty": fmt_fixed(max(1, int(round(spec.size_median / spec.lot_size))), spec.lot_decimals),
        "openPrice": open_px,
        "highPrice": max(open_px, last, key=float),
        "lowPrice": min(open_px, last, key=float),
        "volume": fmt_fixed(lots, spec.lot_decimals),
        "quoteVolume": f"{volume * spec.price:.2f}",
        "openTime": now_ms - DAY_MS,
        "closeTime": now_ms,
        "firstId": max(0, last_id - count + 1),
        "lastId": last_id,
        "count": count,
    }


def recorded_row(symbol: str, trades: list[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    """The ticker/24hr object of a replayed recording: the statistics of every trade it holds
    (``{"a","p","q","T"}`` dicts, id order) — a recording is the day it serves."""
    px = [float(t["p"]) for t in trades]
    qty = [float(t["q"]) for t in trades]
    volume = sum(qty)
    quote = sum(p * q for p, q in zip(px, qty))
    first = trades[0]["p"] if trades else "0"
    last = trades[-1]["p"] if trades else "0"
    return {
        "symbol": symbol,
        "priceChange": repr(round(float(last) - float(first), 10)),
        "priceChangePercent": f"{100.0 * (float(last) / float(first) - 1.0) if px else 0.0:.3f}",
        "weightedAvgPrice": repr(round(quote / volume, 10)) if volume else "0",
        "lastPrice": last,
        "lastQty": trades[-1]["q"] if trades else "0",
        "openPrice": first,
        "highPrice": repr(max(px)) if px else "0",
        "lowPrice": repr(min(px)) if px else "0",
        "volume": repr(round(volume, 10)),
        "quoteVolume": f"{quote:.2f}",
        "openTime": now_ms - DAY_MS,
        "closeTime": now_ms,
        "firstId": trades[0]["a"] if trades else 0,
        "lastId": trades[-1]["a"] if trades else 0,
        "count": len(trades),
    }
