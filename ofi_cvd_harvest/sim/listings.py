"""The simulator's listing table: which of its symbols trade now, and which other contracts
``exchangeInfo`` and ``ticker/24hr`` list beside the perpetuals (docs/simulator.md "Universe").

Binance's universe is not "every symbol it names": a new perpetual is listed as
``PENDING_TRADING`` before it trades, a delisted one goes through ``SETTLING`` / ``CLOSE``, and
the same lists carry quarterly delivery contracts (``BTCUSDT_261225``, contract type
``CURRENT_QUARTER``). The capture shards take only ``TRADING`` perpetuals (ofi_cvd_harvest/
universe/), so the simulator can show the rest: a status per symbol (``TRADING`` unless set,
changeable while it runs — a listing or a delisting) and delivery contracts for chosen symbols.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from ..protocol.vocabulary import OTHER_STATUSES, PERPETUAL, TRADING
from .symbols import spec_for
from .ticker import ticker_row

STATUSES = (TRADING, *OTHER_STATUSES)
QUARTER = "CURRENT_QUARTER"


def _delivery(d: dt.date) -> dt.date:
    """The last Friday of the quarter-end month of ``d``'s quarter."""
    month = ((d.month - 1) // 3 + 1) * 3
    last = dt.date(d.year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - 4) % 7)


def quarter_expiry(now_ms: int) -> str:
    """``YYMMDD`` of the current quarter's delivery (the next quarter's once it is past)."""
    d = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.timezone.utc).date()
    friday = _delivery(d)
    if friday < d:
        friday = _delivery(friday + dt.timedelta(days=14))
    return friday.strftime("%y%m%d")


class Listings:
    """Statuses of the source's symbols and the delivery contracts listed beside them."""

    def __init__(self, statuses: Mapping[str, str] | None = None, delivery: Iterable[str] = (),
                 seed: int = 0):
        self.statuses: dict[str, str] = {}
        for sym, status in (statuses or {}).items():
            self.set_status(sym, status)
        self.delivery = tuple(dict.fromkeys(s.upper() for s in delivery))
        self.seed = seed

    def set_status(self, symbol: str, status: str) -> None:
        """List (``TRADING``), pre-list (``PENDING_TRADING``) or delist (``SETTLING``…) a symbol."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        self.statuses[symbol.upper()] = status

    def status(self, symbol: str) -> str:
        return self.statuses.get(symbol, TRADING)

    def delivery_symbols(self, now_ms: int) -> list[str]:
        expiry = quarter_expiry(now_ms)
        return [f"{sym}_{expiry}" for sym in self.delivery]

    def exchange_info(self, info: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """``info`` (the source's exchangeInfo) with statuses applied and delivery contracts."""
        rows = [dict(row, status=self.status(row["symbol"])) for row in info.get("symbols", [])]
        by_symbol = {row["symbol"]: row for row in rows}
        for sym, name in zip(self.delivery, self.delivery_symbols(now_ms)):
            base = by_symbol.get(sym)
            if base is not None:
                rows.append(dict(base, symbol=name, contractType=QUARTER, status=TRADING))
        return dict(info, symbols=rows)

    def ticker(self, symbol: str, now_ms: int) -> dict[str, Any] | None:
        """The ticker row of a delivery contract (None: not one of ours)."""
        if symbol not in self.delivery_symbols(now_ms):
            return None
        return dict(ticker_row(spec_for(symbol.replace("_", "Q")), self.seed, now_ms), symbol=symbol)


def parse_statuses(text: str) -> dict[str, str]:
    """``"SOLUSDT=PENDING_TRADING,XRPUSDT=SETTLING"`` → mapping (the simulate CLI's form)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        sym, eq, status = part.partition("=")
        if not eq or not sym.strip() or status.strip().upper() not in STATUSES:
            raise ValueError(f"bad listing status {part!r} (want SYMBOL=STATUS, STATUS one of "
                             f"{', '.join(STATUSES)})")
        out[sym.strip().upper()] = status.strip().upper()
    return out


__all__ = ["Listings", "PERPETUAL", "QUARTER", "STATUSES", "parse_statuses", "quarter_expiry"]
