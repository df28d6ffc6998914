"""The contract between the capture loop and a book source (ARCHITECTURE.md, "BookHandler").

Partial depth (``capture/book_partial.py``, the default) and diff depth with REST snapshots
(``capture/book_diff.py``) both satisfy it; the loop only ever calls these methods (and, where
present, the optional ``close``).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..exchange.rest import RestClient
from ..protocol.records import DepthUpdate
from .book_partial import PartialBook


class BookHandler(Protocol):
    def stream_name(self, symbol: str) -> str: ...              # e.g. "btcusdt@depth10@100ms"

    def on_connect(self, symbol: str, conn_id: int) -> None: ...  # next row gets gap=True

    async def on_depth(self, rec: DepthUpdate, recv_ms: int,
                       conn_id: int) -> list[dict]: ...            # the rows to buffer

    def rows_for(self, rec: DepthUpdate, recv_ms: int,
                 conn_id: int) -> list[dict]: ...   # synchronous, no I/O (hot path, draining)


def make_book_handler(settings: Any, rest: RestClient, on_gap, on_event) -> BookHandler:
    """Partial depth (default) or, with ``book_source == "diff"``, ``capture.book_diff.DiffBook``."""
    if settings.book_source == "diff":
        from .book_diff import DiffBook
        return DiffBook(settings, rest, on_gap=on_gap, on_event=on_event)
    return PartialBook(settings.book_levels, on_gap=on_gap)
