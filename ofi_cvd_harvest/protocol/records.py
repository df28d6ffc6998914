"""Typed records decoded from Binance payloads (fields: docs/reading.md "Columns"). Slotted dataclasses: cheap to make
on the hot path, explicit field names for everything downstream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class AggTrade:
    event_ts_ms: int      # E
    symbol: str           # s
    agg_trade_id: int     # a
    price: float          # p
    qty: float            # q
    first_trade_id: int   # f
    last_trade_id: int    # l
    trade_ts_ms: int      # T
    is_buyer_maker: bool  # m


@dataclass(slots=True)
class DepthUpdate:
    """``depthUpdate`` (diff or partial depth). Levels are (price, qty) pairs, best first for
    partial depth; for diff depth qty is absolute and 0 removes the level."""
    event_ts_ms: int          # E
    transact_ts_ms: int       # T
    symbol: str               # s
    first_update_id: int      # U
    final_update_id: int      # u
    prev_final_update_id: int # pu
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


@dataclass(slots=True)
class BookTicker:
    update_id: int        # u
    event_ts_ms: int      # E
    transact_ts_ms: int   # T
    symbol: str           # s
    bid_px: float         # b
    bid_qty: float        # B
    ask_px: float         # a
    ask_qty: float        # A


@dataclass(slots=True)
class DepthSnapshot:
    """REST ``/fapi/v1/depth`` answer."""
    last_update_id: int
    event_ts_ms: int
    transact_ts_ms: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
