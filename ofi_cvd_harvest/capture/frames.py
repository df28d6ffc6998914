"""Which frames a connection may deliver, and the verdict on those it may not
(docs/capture.md, "Hostile frames").

The decoder rejects what cannot be true of any message (:mod:`..protocol.decode`). A valid
message can still be wrong *here*: a stream this connection did not subscribe, or a record
whose symbol or type is not the one its stream carries (``unknown_stream``). And should
handling an accepted record ever raise (a bug), that frame is skipped as ``handler_error``
instead of ending a 72 h capture. Both are counted and recorded like decode errors; a
skipped trade leaves an id gap that the healer fills through REST.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.decode import KINDS as DECODE_KINDS, DecodeError
from ..protocol.records import AggTrade, BookTicker, DepthUpdate
from ..protocol.vocabulary import AGG_TRADE, BOOK_TICKER, DIFF, PARTIAL, parse_stream

UNKNOWN_STREAM = "unknown_stream"
HANDLER_ERROR = "handler_error"
# every kind of decode_errors_total{kind} (created at 0 at start-up: docs/monitoring.md)
FRAME_ERROR_KINDS = (*DECODE_KINDS, UNKNOWN_STREAM, HANDLER_ERROR)

Subscriptions = dict[str, tuple[str, type]]


def subscriptions(streams: Iterable[str]) -> Subscriptions:
    """Stream name -> (SYMBOL, record type) it carries, for the streams of one connection."""
    out: Subscriptions = {}
    for stream in streams:
        sp = parse_stream(stream)
        plain = sp.speed is None and not sp.extra
        if sp.kind == AGG_TRADE and plain:
            out[stream] = (sp.symbol, AggTrade)
        elif sp.kind in (DIFF, PARTIAL):
            out[stream] = (sp.symbol, DepthUpdate)
        elif sp.kind == BOOK_TICKER and plain:
            out[stream] = (sp.symbol, BookTicker)
    return out


def not_subscribed(stream: str | None, rec: object, raw: bytes) -> DecodeError:
    what = f"{type(rec).__name__} {getattr(rec, 'symbol', '?')}"
    return DecodeError(UNKNOWN_STREAM, f"{what} on stream {stream!r}, not subscribed here", raw)


def handler_error(exc: BaseException, raw: bytes) -> DecodeError:
    return DecodeError(HANDLER_ERROR, f"{type(exc).__name__}: {str(exc)[:150]}", raw)
