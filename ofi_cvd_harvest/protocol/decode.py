"""Binance payloads (bytes/str) -> typed records of :mod:`.records`.

Sans-I/O and strict: a message is either turned into a record whose every field has the
right type and a sane value, or rejected with a :class:`DecodeError` whose ``kind`` says why.
The capture counts and skips rejected messages, so a corrupt row can never reach a file.

Kinds (:data:`KINDS`): ``malformed_json`` (not JSON / not an object), ``unknown_event`` (an
``e`` we do not capture, or no ``e`` at all), ``bad_field`` (missing field or wrong type),
``bad_value`` (NaN/inf/negative/zero price or quantity), ``bad_id`` (an id negative or outside
int64, ``f > l``, ``U > u``), ``bad_time`` (``E``/``T`` outside the plausible window of
:mod:`.plausible`), ``crossed_book`` (best bid ≥ best ask), ``exchange_error``
(``{"code":…,"msg":…}``). What cannot be true is rejected here, at the root: nothing
downstream (dedup window, date partitions, raw files) has to cope with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from .fastpath import try_decode
from .plausible import MAX_ID, STATIC, TimeWindow, crossed
from .records import AggTrade, BookTicker, DepthSnapshot, DepthUpdate

_INF = math.inf

KINDS = ("malformed_json", "unknown_event", "bad_field", "bad_value", "bad_id", "bad_time",
         "crossed_book", "exchange_error")


class DecodeError(ValueError):
    """An undecodable message; ``kind`` is a short stable label (metric label, log key)."""

    def __init__(self, kind: str, detail: str, sample: str | bytes = ""):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        if isinstance(sample, (bytes, bytearray, memoryview)):
            sample = bytes(sample)[:300].decode("utf-8", "replace")
        self.sample = str(sample)[:300]


@dataclass(slots=True)
class ControlReply:
    """A reply to SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS (``{"result":…,"id":…}``)."""
    id: Any
    result: Any


Record = AggTrade | DepthUpdate | BookTicker | ControlReply


def _int(d: dict, key: str) -> int:
    v = d[key]
    if type(v) is not int:
        raise DecodeError("bad_field", f"{key} must be an integer, got {type(v).__name__}")
    return v


def _id(d: dict, key: str) -> int:
    """An exchange id: an integer in 0 … int64 max (orjson gives a float beyond uint64)."""
    v = d[key]
    t = type(v)
    if t is int:
        if 0 <= v <= MAX_ID:
            return v
        raise DecodeError("bad_id", f"{key} outside 0..2**63-1: {v}")
    if t is float and v == v and abs(v) > MAX_ID:
        raise DecodeError("bad_id", f"{key} outside 0..2**63-1: {v!r}")
    raise DecodeError("bad_field", f"{key} must be an integer, got {t.__name__}")


def _ts(d: dict, key: str, window: TimeWindow) -> int:
    v = _int(d, key)
    if not window.admits(v):
        raise DecodeError("bad_time", f"{key} {v} implausible (" + (
            f"more than {window.slack_ms / 3_600_000:g} h from the exchange clock)"
            if window.following
            else "before 2017 or after 2099)"))
    return v


def _ordered(lo_key: str, lo: int, hi_key: str, hi: int) -> None:
    if lo > hi:
        raise DecodeError("bad_id", f"{lo_key} {lo} > {hi_key} {hi}")


def _uncrossed(bids: list, asks: list) -> None:
    c = crossed(bids, asks)
    if c is not None:
        raise DecodeError("crossed_book", f"best bid {c[0]!r} >= best ask {c[1]!r}")


def _num(d: dict, key: str, allow_zero: bool = False) -> float:
    """Binance sends decimals as strings; accept JSON numbers too, reject bools/NaN/<=0."""
    v = d[key]
    t = type(v)
    if t is str:
        try:
            x = float(v)
        except ValueError:
            raise DecodeError("bad_field", f"{key} is not a decimal: {v[:40]!r}") from None
    elif t is float or t is int:
        x = float(v)
    else:
        raise DecodeError("bad_field", f"{key} must be a decimal string, got {t.__name__}")
    if not (x > 0.0 and x < _INF):  # also false for NaN
        if allow_zero and x == 0.0:
            return x
        raise DecodeError("bad_value", f"{key} out of range: {v!r}")
    return x


def _sym(d: dict) -> str:
    s = d["s"]
    if type(s) is not str or not s:
        raise DecodeError("bad_field", "s must be a non-empty string")
    return s


def _levels(d: dict, key: str) -> list[tuple[float, float]]:
    raw = d[key]
    if type(raw) is not list:
        raise DecodeError("bad_field", f"{key} must be a list of [price, qty]")
    out = []
    app = out.append
    for lvl in raw:
        # fast path (inline, the common case): ["price", "qty"] strings with sane values
        if type(lvl) is list and len(lvl) >= 2:
            p = lvl[0]
            q = lvl[1]
            if type(p) is str and type(q) is str:
                try:
                    fp = float(p)
                    fq = float(q)
                except ValueError:
                    fp = fq = -1.0
                if 0.0 < fp < _INF and 0.0 <= fq < _INF:
                    app((fp, fq))
                    continue
        # slow path: numbers, or the precise error
        if type(lvl) is not list or len(lvl) < 2:
            raise DecodeError("bad_field", f"{key} level must be [price, qty]")
        app((_num(lvl, 0), _num(lvl, 1, allow_zero=True)))  # type: ignore[arg-type]
    return out


def agg_trade(d: dict, window: TimeWindow = STATIC) -> AggTrade:
    m = d["m"]
    if type(m) is not bool:
        raise DecodeError("bad_field", f"m must be a boolean, got {type(m).__name__}")
    rec = AggTrade(_ts(d, "E", window), _sym(d), _id(d, "a"), _num(d, "p"), _num(d, "q"),
                   _id(d, "f"), _id(d, "l"), _ts(d, "T", window), m)
    _ordered("f", rec.first_trade_id, "l", rec.last_trade_id)
    return rec


def depth_update(d: dict, window: TimeWindow = STATIC) -> DepthUpdate:
    rec = DepthUpdate(_ts(d, "E", window), _ts(d, "T", window), _sym(d), _id(d, "U"),
                      _id(d, "u"), _id(d, "pu"), _levels(d, "b"), _levels(d, "a"))
    _ordered("U", rec.first_update_id, "u", rec.final_update_id)
    _uncrossed(rec.bids, rec.asks)
    return rec


def book_ticker(d: dict, window: TimeWindow = STATIC) -> BookTicker:
    rec = BookTicker(_id(d, "u"), _ts(d, "E", window), _ts(d, "T", window), _sym(d),
                     _num(d, "b"), _num(d, "B", allow_zero=True), _num(d, "a"),
                     _num(d, "A", allow_zero=True))
    _uncrossed([(rec.bid_px, rec.bid_qty)], [(rec.ask_px, rec.ask_qty)])
    return rec


_EVENTS = {"aggTrade": agg_trade, "depthUpdate": depth_update, "bookTicker": book_ticker}


def decode_payload(data: Any, window: TimeWindow = STATIC) -> Record:
    """An already-parsed ``data`` object (the inside of the combined envelope) -> record;
    event and trade times must lie in ``window`` (:mod:`.plausible`)."""
    if type(data) is not dict:
        raise DecodeError("malformed_json", "payload is not a JSON object")
    ev = data.get("e")
    fn = _EVENTS.get(ev) if type(ev) is str else None
    if fn is None:
        if "result" in data and "id" in data:
            return ControlReply(data["id"], data["result"])
        if "code" in data and "msg" in data:
            raise DecodeError("exchange_error", f"code {data['code']}: {str(data['msg'])[:100]}")
        raise DecodeError("unknown_event", f"event type {str(ev)[:40]!r}")
    try:
        return fn(data, window)
    except KeyError as exc:
        raise DecodeError("bad_field", f"missing field {exc.args[0]!r}") from None
    except (TypeError, IndexError) as exc:
        raise DecodeError("bad_field", str(exc)[:100]) from None


def decode(raw: bytes | str, window: TimeWindow = STATIC) -> tuple[str | None, Record]:
    """One WebSocket message (combined envelope or raw ``/ws/`` payload) -> (stream, record).

    ``stream`` is the envelope's stream name, None for raw payloads and control replies.
    Raises :class:`DecodeError` (with a ``sample`` of the message) for anything else.
    Well-formed market data takes the typed fast path (:mod:`.fastpath`, same result).
    ``window``: the plausible event/trade times (the capture's follows the exchange clock).
    """
    fast = try_decode(raw, window)
    if fast is not None:
        return fast
    return decode_strict(raw, window)


def decode_strict(raw: bytes | str, window: TimeWindow = STATIC) -> tuple[str | None, Record]:
    """:func:`decode` without the fast path: the reference the fast path must agree with."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise DecodeError("malformed_json", "not valid JSON", raw) from None
    try:
        if type(obj) is dict and "stream" in obj:
            stream = obj["stream"]
            if type(stream) is not str:
                raise DecodeError("bad_field", "stream must be a string")
            if "data" not in obj:
                raise DecodeError("bad_field", "envelope without data")
            return stream, decode_payload(obj["data"], window)
        return None, decode_payload(obj, window)
    except DecodeError as exc:
        if not exc.sample:
            exc.sample = (raw[:300].decode("utf-8", "replace")
                          if isinstance(raw, (bytes, bytearray)) else str(raw)[:300])
        raise


def rest_agg_trades(symbol: str, body: bytes | str | list) -> list[AggTrade]:
    """REST ``/fapi/v1/aggTrades`` answer -> records; ``event_ts_ms`` is ``T`` (no ``E``)."""
    rows = orjson.loads(body) if isinstance(body, (bytes, str)) else body
    if type(rows) is not list:
        raise DecodeError("bad_field", "aggTrades answer is not a list", str(rows)[:300])
    out = []
    for d in rows:
        if type(d) is not dict:
            raise DecodeError("bad_field", "aggTrades row is not an object", str(d)[:300])
        try:
            m = d["m"]
            if type(m) is not bool:
                raise DecodeError("bad_field", "m must be a boolean")
            t = _ts(d, "T", STATIC)
            rec = AggTrade(t, symbol, _id(d, "a"), _num(d, "p"), _num(d, "q"), _id(d, "f"),
                           _id(d, "l"), t, m)
            _ordered("f", rec.first_trade_id, "l", rec.last_trade_id)
            out.append(rec)
        except KeyError as exc:
            raise DecodeError("bad_field", f"missing field {exc.args[0]!r}", str(d)[:300]) from None
        except DecodeError as exc:
            exc.sample = exc.sample or str(d)[:300]
            raise
    return out


def depth_snapshot(body: bytes | str | dict) -> DepthSnapshot:
    """REST ``/fapi/v1/depth`` answer -> :class:`DepthSnapshot`."""
    d = orjson.loads(body) if isinstance(body, (bytes, str)) else body
    if type(d) is not dict:
        raise DecodeError("malformed_json", "depth answer is not an object", str(d)[:300])
    try:
        snap = DepthSnapshot(_id(d, "lastUpdateId"), _ts(d, "E", STATIC), _ts(d, "T", STATIC),
                             _levels(d, "bids"), _levels(d, "asks"))
        _uncrossed(snap.bids, snap.asks)
        return snap
    except KeyError as exc:
        raise DecodeError("bad_field", f"missing field {exc.args[0]!r}", str(d)[:300]) from None
    except DecodeError as exc:
        exc.sample = exc.sample or str(d)[:300]
        raise
