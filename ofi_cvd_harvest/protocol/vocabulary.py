"""Binance USDT-M vocabulary, stated once: stream names, their endpoint, the partial-depth
levels and the REST request weights (docs/capture.md, docs/simulator.md).

The simulator, the exchange client, the capture and the settings all read these facts from
here, so a name the client subscribes to is by construction one the simulator parses the
same way. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MARKET = "market"   # aggTrade, markPrice, kline, ticker
PUBLIC = "public"   # depth, partial depth, bookTicker

PARTIAL_LEVELS = (5, 10, 20)      # Binance's partial book depth streams ``@depth{5,10,20}``
BOOK_SPEED = "100ms"              # the update speed the capture subscribes to and the sim serves
# diff-depth speeds a recording may carry (None = Binance's default 250ms, no suffix)
DIFF_SPEEDS = (None, "100ms", "0ms", "250ms", "500ms")

# stream kinds of :class:`StreamSpec`
AGG_TRADE, TRADE, BOOK_TICKER = "aggTrade", "trade", "bookTicker"
DIFF, PARTIAL, OTHER = "depth", "partial", "other"


@dataclass(frozen=True)
class StreamSpec:
    """One stream name taken apart: ``btcusdt@depth10@100ms`` -> (BTCUSDT, partial, 10, 100ms).

    ``extra`` is True when more ``@`` parts follow the speed (no Binance stream has them)."""
    symbol: str                 # upper-case
    kind: str                   # AGG_TRADE, TRADE, BOOK_TICKER, DIFF, PARTIAL or OTHER
    levels: int | None = None   # partial depth only
    speed: str | None = None    # ``100ms``… or None when absent
    extra: bool = False


_KINDS = {AGG_TRADE: AGG_TRADE, TRADE: TRADE, BOOK_TICKER: BOOK_TICKER, "depth": DIFF}


def parse_stream(name: str) -> StreamSpec:
    """The one parser of stream names; never raises (unknown forms have kind ``other``)."""
    sym, _, rest = name.partition("@")
    head, _, tail = rest.partition("@")
    speed, _, more = tail.partition("@")
    levels = None
    kind = _KINDS.get(head, OTHER)
    if kind == OTHER and head.startswith("depth"):
        digits = head[5:]
        if digits.isascii() and digits.isdigit():
            kind, levels = PARTIAL, int(digits)
    return StreamSpec(sym.upper(), kind, levels, speed if "@" in rest else None, "@" in tail)


def format_stream(spec: StreamSpec) -> str:
    """Inverse of :func:`parse_stream` for the canonical forms (lower-case symbol)."""
    head = {PARTIAL: f"depth{spec.levels}", DIFF: "depth"}.get(spec.kind, spec.kind)
    return f"{spec.symbol.lower()}@{head}" + (f"@{spec.speed}" if spec.speed else "")


def agg_trade_stream(symbol: str) -> str:
    return f"{symbol.lower()}@aggTrade"


def partial_depth_stream(symbol: str, levels: int = 10) -> str:
    return f"{symbol.lower()}@depth{levels}@{BOOK_SPEED}"


def diff_depth_stream(symbol: str) -> str:
    return f"{symbol.lower()}@depth@{BOOK_SPEED}"


def book_ticker_stream(symbol: str) -> str:
    return f"{symbol.lower()}@bookTicker"


def endpoint_of(stream: str) -> str:
    """Which endpoint serves ``stream``: book streams on ``/public``, the rest on ``/market``
    (the split USDT-M endpoints since 2026-04)."""
    head = stream.partition("@")[2]
    return PUBLIC if head.startswith(("depth", "bookTicker")) else MARKET


# ------------------------------------------------------------------ REST request weights
AGG_TRADES_PATH, DEPTH_PATH = "/fapi/v1/aggTrades", "/fapi/v1/depth"
EXCHANGE_INFO_PATH, TICKER_24HR_PATH = "/fapi/v1/exchangeInfo", "/fapi/v1/ticker/24hr"
REQUEST_WEIGHTS = {"/fapi/v1/time": 1, "/fapi/v1/ping": 1, EXCHANGE_INFO_PATH: 1,
                   AGG_TRADES_PATH: 20}
# ticker/24hr: 1 with ``symbol``, 40 for every symbol at once (Binance's weights)
TICKER_24HR_WEIGHTS = {"one": 1, "all": 40}
DEPTH_LIMIT_WEIGHTS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}   # the valid limits
DEFAULT_WEIGHT = 1


def depth_weight(limit: int) -> int:
    """Weight of ``/fapi/v1/depth?limit=limit`` (limits between the valid ones round up)."""
    for bound, weight in DEPTH_LIMIT_WEIGHTS.items():
        if limit <= bound:
            return weight
    return DEPTH_LIMIT_WEIGHTS[1000]


def ticker_24hr_weight(one_symbol: bool) -> int:
    """Weight of ``/fapi/v1/ticker/24hr`` with (``True``) or without a ``symbol``."""
    return TICKER_24HR_WEIGHTS["one" if one_symbol else "all"]


def request_weight(path: str) -> int:
    """Weight of a GET on ``path`` other than ``/fapi/v1/depth`` (see :func:`depth_weight`) and
    ``/fapi/v1/ticker/24hr`` (see :func:`ticker_24hr_weight`)."""
    return REQUEST_WEIGHTS.get(path, DEFAULT_WEIGHT)


# ------------------------------------------------------------------ exchangeInfo listing facts
TRADING = "TRADING"            # ``status`` of a symbol that trades now
PERPETUAL = "PERPETUAL"        # ``contractType`` of a perpetual (vs CURRENT_QUARTER, NEXT_QUARTER…)
# other statuses Binance reports: listed but not yet trading, being delisted, halted
OTHER_STATUSES = ("PENDING_TRADING", "PRE_SETTLE", "SETTLING", "CLOSE", "DELIVERING", "BREAK")
