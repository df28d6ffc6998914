"""Ground truth: every aggTrade the market emitted, in compact numpy columns.

REST ``aggTrades`` and the ``--dump-trades`` file are served from here, so a test can prove the
capture lost nothing. Appends are cheap (chunks), queries consolidate lazily; ids are
consecutive so ``fromId`` is an index computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .symbols import SymbolSpec, fmt_fixed

_COLS = ("T", "E", "px", "qty", "l", "m")


class TradeLog:
    """All trades of one symbol: ``a`` = ``first_id + row``; ``f`` = previous ``l`` + 1."""

    def __init__(self, spec: SymbolSpec, first_id: int, first_fill_id: int):
        self.spec = spec
        self.first_id = first_id
        self.first_fill_id = first_fill_id
        self._chunks: dict[str, list[np.ndarray]] = {c: [] for c in _COLS}
        self._cols: dict[str, np.ndarray] = {
            c: np.empty(0, np.bool_ if c == "m" else np.int64) for c in _COLS}
        self._n = 0        # rows consolidated in _cols
        self._total = 0    # rows including pending chunks

    def __len__(self) -> int:
        return self._total

    @property
    def next_id(self) -> int:
        return self.first_id + len(self)

    def append(self, T: np.ndarray, E: np.ndarray, px: np.ndarray, qty: np.ndarray,
               l: np.ndarray, m: np.ndarray) -> None:
        for name, arr in zip(_COLS, (T, E, px, qty, l, m)):
            self._chunks[name].append(arr)
        self._total += len(T)

    def columns(self) -> dict[str, np.ndarray]:
        """Consolidated columns (``a`` and ``f`` derived)."""
        if self._chunks["T"]:
            for c in _COLS:
                self._cols[c] = np.concatenate([self._cols[c], *self._chunks[c]])
                self._chunks[c].clear()
            self._n = len(self._cols["T"])
        cols = dict(self._cols)
        n = self._n
        cols["a"] = np.arange(self.first_id, self.first_id + n, dtype=np.int64)
        f = np.empty(n, np.int64)
        if n:
            f[0] = self.first_fill_id
            f[1:] = cols["l"][:-1] + 1
        cols["f"] = f
        return cols

    def query(self, visible_until_ms: int, from_id: int | None = None, start_ms: int | None = None,
              end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Binance ``aggTrades`` semantics over trades with ``T <= visible_until_ms``."""
        cols = self.columns()
        T = cols["T"]
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
        td, ld = self.spec.tick_decimals, self.spec.lot_decimals
        rows = zip(cols["a"][lo:hi].tolist(), cols["px"][lo:hi].tolist(),
                   cols["qty"][lo:hi].tolist(), cols["f"][lo:hi].tolist(),
                   cols["l"][lo:hi].tolist(), T[lo:hi].tolist(), cols["m"][lo:hi].tolist())
        return [{"a": a, "p": fmt_fixed(p, td), "q": fmt_fixed(q, ld), "f": f, "l": l, "T": t,
                 "m": m} for a, p, q, f, l, t, m in rows]

    def records(self, visible_until_ms: int | None = None) -> list[dict[str, Any]]:
        """Every trade as a dict with numeric fields (for tests and ``ground_truth``)."""
        cols = self.columns()
        n = len(cols["T"]) if visible_until_ms is None else int(
            np.searchsorted(cols["T"], visible_until_ms, side="right"))
        tick, lot = self.spec.tick_size, self.spec.lot_size
        px = np.round(cols["px"][:n] * tick, self.spec.tick_decimals).tolist()
        qty = np.round(cols["qty"][:n] * lot, self.spec.lot_decimals).tolist()
        return [{"agg_trade_id": a, "event_ts_ms": e, "trade_ts_ms": t, "symbol": self.spec.symbol,
                 "price": p, "qty": q, "first_trade_id": f, "last_trade_id": l,
                 "is_buyer_maker": m}
                for a, e, t, p, q, f, l, m in zip(
                    cols["a"][:n].tolist(), cols["E"][:n].tolist(), cols["T"][:n].tolist(), px,
                    qty, cols["f"][:n].tolist(), cols["l"][:n].tolist(), cols["m"][:n].tolist())]
