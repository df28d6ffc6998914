"""Per-symbol market parameters: tick/lot sizes, price level and activity rates.

BTCUSDT and ETHUSDT are calibrated on the real 2024-07-19 00:00–00:05 UTC recordings (docs/simulator.md);
any other name gets a plausible synthetic market derived deterministically from the name
(crc32), so hundreds of symbols can be simulated and a symbol always looks the same.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    price: float               # initial mid price
    tick_decimals: int         # tick size = 10**-tick_decimals
    lot_decimals: int          # quantity step = 10**-lot_decimals
    trade_rate: float          # mean aggTrades/s (calm)
    size_median: float         # aggTrade quantity median
    size_p99: float            # aggTrade quantity 99th percentile
    size_max: float            # hard cap on one aggTrade quantity
    book_ticker_rate: float    # mean bookTicker updates/s
    depth_changes: float       # mean changed levels per 100 ms depth event

    @property
    def tick_size(self) -> float:
        return 10.0 ** -self.tick_decimals

    @property
    def lot_size(self) -> float:
        return 10.0 ** -self.lot_decimals

    @property
    def size_sigma(self) -> float:
        """Log-normal sigma matching median and p99 (z_0.99 = 2.3263)."""
        return math.log(self.size_p99 / self.size_median) / 2.3263


KNOWN: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", 64000.0, 1, 3, 32.0, 0.013, 1.67, 8.0, 150.0, 30.0),
    "ETHUSDT": SymbolSpec("ETHUSDT", 3450.0, 2, 3, 40.0, 0.044, 12.8, 174.0, 127.0, 30.0),
}


def spec_for(symbol: str) -> SymbolSpec:
    """The calibrated spec of a known symbol, else a synthetic one seeded by the name."""
    symbol = symbol.upper()
    if symbol in KNOWN:
        return KNOWN[symbol]
    h = zlib.crc32(symbol.encode())
    u1, u2, u3 = (h & 0x3FF) / 1023.0, ((h >> 10) & 0x3FF) / 1023.0, ((h >> 20) & 0x3FF) / 1023.0
    price = 10.0 ** (-2.0 + 5.0 * u1)                  # 0.01 .. 1000
    mag = math.floor(math.log10(price))
    tick_decimals = max(0, 4 - mag)                    # about 1e4..1e5 ticks per price unit
    price = round(price, tick_decimals)
    median_qty = 300.0 / price                         # ~300 USDT median notional
    lot_decimals = max(0, min(8, -math.floor(math.log10(median_qty)) + 1))
    rate = 1.0 + 14.0 * u2                             # 1 .. 15 trades/s
    return SymbolSpec(
        symbol=symbol, price=price, tick_decimals=tick_decimals, lot_decimals=lot_decimals,
        trade_rate=rate, size_median=median_qty, size_p99=median_qty * (80 + 200 * u3),
        size_max=median_qty * 4000, book_ticker_rate=rate * 4.0, depth_changes=20.0)


def fmt_fixed(units: int, decimals: int) -> str:
    """Integer ``units`` of 10**-decimals as Binance's fixed-point decimal string."""
    if decimals == 0:
        return str(units)
    s = 10 ** decimals
    return f"{units // s}.{units % s:0{decimals}d}"
