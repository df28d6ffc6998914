"""Typed fast path of :func:`.decode.decode`: well-formed Binance frames decoded in C (msgspec).

Why: the strict decoder parses with orjson and then checks and converts every field in Python;
a depth10 frame carries 40 decimal strings, so it cost ~8–9 µs, about a third of the capture's
per-message work (docs/performance.md). Here one msgspec schema does the parsing, the type
checks and the string → float conversion in C (~1 µs for a trade, ~3.5 µs for depth10).

Contract: :func:`try_decode` returns exactly what the strict decoder returns for the same
frame, or ``None`` — never a record the strict decoder would reject. Anything unusual (control
replies, unknown events, numbers where strings are expected, extra level elements, bad values)
makes it return ``None`` and the strict decoder decides, with its precise error. So the rules
below are a strict *subset* of the strict decoder's:

* integers, booleans and strings are decoded in msgspec's strict mode (no ``"1"`` → 1, no
  ``1.0`` → 1, no ``"true"`` → True, and ``s`` must be non-empty); ids within 0 … int64 max
  (checked in C), times within int64 and then within the caller's plausible window
  (:mod:`.plausible`, two int comparisons each), ``f ≤ l`` and ``U ≤ u``;
* prices and quantities are the only lax fields: decimal strings (or JSON numbers, which the
  strict decoder also accepts) → float, with price > 0, quantity > 0 (trade) or ≥ 0 (book
  level), finite — NaN fails the comparisons, ±inf the upper bound;
* a book side is decoded by a second, lax decoder over the side's raw bytes, so laxness can
  never leak into the integer and boolean fields; a crossed book (:func:`.plausible.crossed`)
  is left to the strict decoder.
"""

from __future__ import annotations

import sys
from typing import Annotated, Union

import msgspec
from msgspec import Meta, Raw, Struct

from .plausible import MAX_ID, STATIC, TimeWindow, crossed
from .records import AggTrade, BookTicker, DepthUpdate

_MAX = sys.float_info.max
Price = Annotated[float, Meta(gt=0.0, le=_MAX)]
LevelQty = Annotated[float, Meta(ge=0.0, le=_MAX)]      # 0 removes a level (diff depth)
Symbol = Annotated[str, Meta(min_length=1)]
Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]   # orjson turns bigger ones into floats
Id = Annotated[int, Meta(ge=0, le=MAX_ID)]


class _Trade(Struct, tag_field="e", tag="aggTrade"):
    E: Int
    s: Symbol
    a: Id
    p: str
    q: str
    f: Id
    l: Id  # noqa: E741  (Binance's field name)
    T: Int
    m: bool


class _Depth(Struct, tag_field="e", tag="depthUpdate"):
    E: Int
    T: Int
    s: Symbol
    U: Id
    u: Id
    pu: Id
    b: Raw
    a: Raw


class _Ticker(Struct, tag_field="e", tag="bookTicker"):
    u: Id
    E: Int
    T: Int
    s: Symbol
    b: str
    B: str
    a: str
    A: str


_Payload = Union[_Trade, _Depth, _Ticker]


class _Envelope(Struct):
    stream: str
    data: _Payload


_envelope = msgspec.json.Decoder(_Envelope).decode
_payload = msgspec.json.Decoder(_Payload).decode
_side = msgspec.json.Decoder(list[tuple[Price, LevelQty]], strict=False).decode
_Error = msgspec.ValidationError, msgspec.DecodeError
_INF = float("inf")
_ENVELOPE_PREFIX = b'{"stream"'


def _pos(s: str) -> float:
    x = float(s)                   # the strict decoder's own conversion
    if not (0.0 < x < _INF):       # also false for NaN
        raise ValueError(s)
    return x


def _nonneg(s: str) -> float:
    x = float(s)
    if not (0.0 <= x < _INF):
        raise ValueError(s)
    return x


def try_decode(raw: bytes, window: TimeWindow = STATIC
               ) -> tuple[str | None, AggTrade | DepthUpdate | BookTicker] | None:
    """(stream, record) for a well-formed aggTrade / depthUpdate / bookTicker frame (combined
    envelope or raw payload) with times in ``window``, else ``None`` (the strict decoder then
    decides)."""
    try:
        if raw[:9] == _ENVELOPE_PREFIX:
            env = _envelope(raw)
            stream, d = env.stream, env.data
        else:
            stream, d = None, _payload(raw)
        lo, hi = window.lo, window.hi
        if not (lo <= d.E <= hi and lo <= d.T <= hi):
            return None        # maybe stale bounds: the strict decoder asks window.admits
        t = type(d)
        if t is _Trade:
            if d.f > d.l:
                return None
            return stream, AggTrade(d.E, d.s, d.a, _pos(d.p), _pos(d.q), d.f, d.l, d.T, d.m)
        if t is _Depth:
            if d.U > d.u:
                return None
            bids, asks = _side(d.b), _side(d.a)
            if bids and asks and max(bids)[0] >= min(asks)[0] and crossed(bids, asks):
                return None         # (the inline max/min spares a call on every true frame)
            return stream, DepthUpdate(d.E, d.T, d.s, d.U, d.u, d.pu, bids, asks)
        bp, ap = _pos(d.b), _pos(d.a)
        if bp >= ap:
            return None
        return stream, BookTicker(d.u, d.E, d.T, d.s, bp, _nonneg(d.B), ap, _nonneg(d.A))
    except (*_Error, ValueError, TypeError):
        return None
