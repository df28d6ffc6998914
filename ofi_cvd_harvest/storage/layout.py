"""Partition paths relative to the data root (README "What you get"), shared by writers and
readers."""

from __future__ import annotations

import datetime as dt
import re

from ..settings import SYMBOL_RE

# ASCII digits to the very end: ``\d`` takes other scripts' digits and ``$`` a trailing newline,
# both of which would name a directory no reader finds
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def utc_date(ts_ms: int) -> str:
    """UTC calendar date (YYYY-MM-DD) of an epoch-milliseconds timestamp."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d")


def day_bounds_ms(date: str) -> tuple[int, int]:
    """[start, end) of a UTC date in epoch milliseconds."""
    d = dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    start = int(d.timestamp() * 1000)
    return start, start + 86_400_000


def previous_date(date: str) -> str:
    d = dt.datetime.strptime(date, "%Y-%m-%d") - dt.timedelta(days=1)
    return d.strftime("%Y-%m-%d")


def _check(date: str, symbol: str) -> None:
    if not DATE_RE.match(date):
        raise ValueError(f"bad partition date {date!r}")
    if not SYMBOL_RE.fullmatch(symbol):
        raise ValueError(f"bad partition symbol {symbol!r}")


def raw_dir(date: str, symbol: str, stream: str) -> str:
    """``raw/date=…/symbol=…/stream=…`` (relative to the data root)."""
    _check(date, symbol)
    return f"raw/date={date}/symbol={symbol}/stream={stream}"


def raw_file(date: str, symbol: str, stream: str, first_recv_ms: int, seq: int) -> str:
    return f"{raw_dir(date, symbol, stream)}/part-{first_recv_ms}-{seq:06d}.parquet"


def derived_dir(date: str, symbol: str, kind: str) -> str:
    """``ofi_cvd/date=…/symbol=…/kind=…`` (relative to the data root)."""
    _check(date, symbol)
    return f"ofi_cvd/date={date}/symbol={symbol}/kind={kind}"


def derived_file(date: str, symbol: str, kind: str) -> str:
    """A derived partition is one file, so replacing it is one atomic rename."""
    return f"{derived_dir(date, symbol, kind)}/part-00000.parquet"
