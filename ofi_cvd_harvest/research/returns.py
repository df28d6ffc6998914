"""Trade-price forward returns (docs/research.md "Forward returns").

The price at time t is the last trade at or before t: trades in ``agg_trade_id`` order on the
engine clock (running max of event time, as the signal tables use), so "at or before" is one
binary search. The return at horizon h is 10⁴·(p(t+h) − p(t))/p(t) bps, defined only when the
data reaches t+h (a trade at or after t+h exists): a horizon past the last trade would compare
a stale price. Horizons past midnight read the next day's prices when they exist; otherwise
they are null and counted as ``past_midnight`` (never silently dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class PricePath:
    clock: np.ndarray      # int64 ms, non-decreasing
    price: np.ndarray      # float64
    day_end: int           # end of the study date (ms)
    has_next_day: bool     # the next day's trades were available

    @classmethod
    def of(cls, prices: pl.DataFrame, next_prices: pl.DataFrame | None, day_end: int) -> "PricePath":
        """From the date's ``prices`` table and the next date's (or ``None``); rows are put in
        ``agg_trade_id`` order and deduplicated (a trade stored on both dates counts once)."""
        cols = ["agg_trade_id", "event_ts_ms", "price"]
        parts = [prices.select(cols)]
        has_next = next_prices is not None and len(next_prices) > 0
        if has_next:
            parts.append(next_prices.select(cols))
        df = (pl.concat(parts).sort("agg_trade_id", maintain_order=True)
              .unique("agg_trade_id", keep="first", maintain_order=True)
              .filter(pl.col("price").is_not_null() & pl.col("event_ts_ms").is_not_null()))
        clock = np.maximum.accumulate(df["event_ts_ms"].to_numpy()) if len(df) else np.zeros(0, np.int64)
        return cls(clock.astype(np.int64), df["price"].cast(pl.Float64).to_numpy(), day_end, has_next)

    @property
    def end(self) -> int:
        return int(self.clock[-1]) if len(self.clock) else -1

    def at(self, t_ms: np.ndarray) -> np.ndarray:
        """Last trade price at or before each ``t_ms`` (NaN before the first trade)."""
        idx = np.searchsorted(self.clock, t_ms, side="right") - 1
        out = np.full(len(t_ms), np.nan)
        ok = idx >= 0
        out[ok] = self.price[idx[ok]]
        return out

    def forward(self, t_ms: np.ndarray, horizon_sec: int) -> tuple[np.ndarray, np.ndarray]:
        """(returns in bps with NaN where undefined, mask of those null because t+h is past
        midnight without the next day's data)."""
        h_ms = int(horizon_sec) * 1000
        p0 = self.at(t_ms)
        target = t_ms + h_ms
        reach = target <= self.end
        p1 = np.where(reach, self.at(target), np.nan)
        ret = 1e4 * (p1 - p0) / p0
        past_midnight = ~reach & (target >= self.day_end) & (not self.has_next_day)
        return ret, past_midnight
