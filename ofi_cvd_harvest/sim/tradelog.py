"""Ground truth: every aggTrade the market emitted, in compact numpy columns.

REST ``aggTrades`` and the ``--dump-trades`` file are served from here, so a test can prove the
capture lost nothing. Ids are consecutive, so ``fromId`` is an index computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .symbols import SymbolSpec, fmt_fixed

_COLS = ("T", "E", "px", "qty", "l", "m")


class TradeLog:
    """All trades of one symbol: ``a`` = ``first_id + row``; ``f`` = previous ``l`` + 1.

    Rows arrive as Python tuples (cheap on the generator's hot path) and move in blocks into
    capacity-doubling numpy columns, so a REST query costs O(rows returned + log n), not O(n),
    even after a simulated day (~2 million trades, ~40 bytes each)."""

    def __init__(self, spec: SymbolSpec, first_id: int, first_fill_id: int):
        self.spec = spec
        self.first_id = first_id
        self.first_fill_id = first_fill_id
        self._buf: dict[str, np.ndarray] = {
            c: np.empty(1024, np.bool_ if c == "m" else np.int64) for c in _COLS}
        self._n = 0        # rows in the numpy columns
        self._total = 0    # rows including pending tuples
        self._rows: list[tuple] = []

    def __len__(self) -> int:
        return self._total

    @property
    def next_id(self) -> int:
        return self.first_id + self._total

    def add(self, T: int, E: int, px: int, qty: int, l: int, m: bool) -> None:
        """One trade, in id order."""
        self._rows.append((T, E, px, qty, l, m))
        self._total += 1
        if len(self._rows) >= 8192:
            self._flush_rows()

    def _flush_rows(self) -> None:
        if not self._rows:
            return
        k = len(self._rows)
        need = self._n + k
        cap = len(self._buf["T"])
        if need > cap:
            while cap < need:
                cap *= 2
            for c, old in self._buf.items():
                grown = np.empty(cap, old.dtype)
                grown[:self._n] = old[:self._n]
                self._buf[c] = grown
        for c, vals in zip(_COLS, zip(*self._rows)):
            self._buf[c][self._n:need] = vals
        self._n = need
        self._rows = []

    def columns(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """Columns of rows [lo, hi) (views; ``a`` and ``f`` derived)."""
        self._flush_rows()
        hi = self._n if hi is None else min(hi, self._n)
        lo = max(0, min(lo, hi))
        cols = {c: b[lo:hi] for c, b in self._buf.items()}
        cols["a"] = np.arange(self.first_id + lo, self.first_id + hi, dtype=np.int64)
        f = np.empty(hi - lo, np.int64)
        if hi > lo:
            f[0] = self.first_fill_id if lo == 0 else int(self._buf["l"][lo - 1]) + 1
            f[1:] = cols["l"][:-1] + 1
        cols["f"] = f
        return cols

    def query(self, visible_until_ms: int, from_id: int | None = None, start_ms: int | None = None,
              end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Binance ``aggTrades`` semantics over trades with ``T <= visible_until_ms``."""
        self._flush_rows()
        T = self._buf["T"][:self._n]
        n_vis = int(np.searchsorted(T, visible_until_ms, side="right"))
        if from_id is not None:
            lo = max(0, from_id - self.first_id)
            hi = min(n_vis, lo + limit)
            if end_ms is not None:
                hi = min(hi, int(np.searchsorted(T, end_ms, side="right")))
        elif start_ms is not None or end_ms is not None:
            lo = int(np.searchsorted(T, start_ms, side="left")) if start_ms is not None else 0
            e = end_ms if end_ms is not None else visible_until_ms
            hi = min(n_vis, int(np.searchsorted(T, e, side="right")), lo + limit)
        else:
            hi = n_vis
            lo = max(0, hi - limit)
        if hi <= lo:
            return []
        cols = self.columns(lo, hi)
        td, ld = self.spec.tick_decimals, self.spec.lot_decimals
        rows = zip(cols["a"].tolist(), cols["px"].tolist(), cols["qty"].tolist(),
                   cols["f"].tolist(), cols["l"].tolist(), cols["T"].tolist(), cols["m"].tolist())
        return [{"a": a, "p": fmt_fixed(p, td), "q": fmt_fixed(q, ld), "f": f, "l": l, "T": t,
                 "m": m} for a, p, q, f, l, t, m in rows]

    def records(self, visible_until_ms: int | None = None) -> list[dict[str, Any]]:
        """Every trade as a dict with numeric fields (for tests and ``ground_truth``)."""
        self._flush_rows()
        n = self._n if visible_until_ms is None else int(
            np.searchsorted(self._buf["T"][:self._n], visible_until_ms, side="right"))
        cols = self.columns(0, n)
        tick, lot = self.spec.tick_size, self.spec.lot_size
        px = np.round(cols["px"] * tick, self.spec.tick_decimals).tolist()
        qty = np.round(cols["qty"] * lot, self.spec.lot_decimals).tolist()
        return [{"agg_trade_id": a, "event_ts_ms": e, "trade_ts_ms": t, "symbol": self.spec.symbol,
                 "price": p, "qty": q, "first_trade_id": f, "last_trade_id": l,
                 "is_buyer_maker": m}
                for a, e, t, p, q, f, l, m in zip(
                    cols["a"].tolist(), cols["E"].tolist(), cols["T"].tolist(), px, qty,
                    cols["f"].tolist(), cols["l"].tolist(), cols["m"].tolist())]
