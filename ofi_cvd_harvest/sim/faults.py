"""Fault injection for the simulator (issue 6): what can go wrong between Binance and us.

Spec string (``--faults``), comma-separated ``name=value``:

=============  =====================================================================================
``disconnect``  per delivered WS message: abort the TCP connection (no close frame)
``drop``        per message: never delivered to this client (an ``a`` gap / broken ``pu`` chain);
                the trade stays in the REST ground truth, which is what healing recovers
``duplicate``   per message: delivered twice
``reorder``     per message: held back and delivered after the next message
``latency``     per message: a latency spike — delivery pauses ``latency_ms`` (default 800 ms wall)
                before this message (everything behind it is late too)
``malformed``   per message: a truncated, invalid JSON text frame is sent *instead* of it
``badvalue``    per message: sent with a bad value instead: unknown event type, wrong field type,
                NaN or negative quantity, missing field (cycled by the fault RNG)
``stall``       per message: no data for ``stall_s`` seconds (default 3 s wall), then the backlog
``cut``         seconds (not a rate): every connection is closed after this age — the 24 h cut,
                scaled; same as ``--max-conn-age``
``http429``     per REST request: HTTP 429 with ``Retry-After`` (as if over the weight limit)
``http5xx``     per REST request: HTTP 500/502/503/504 with a Binance error body
``latency_ms``, ``stall_s``: the sizes of the spikes/stalls above
=============  =====================================================================================

Rates are probabilities in [0, 1]. Each connection draws from its own RNG seeded by the
simulator seed and the connection's ordinal, so a fault pattern is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any

import orjson

MESSAGE_FAULTS = ("disconnect", "drop", "duplicate", "reorder", "latency", "malformed", "badvalue",
                  "stall")
REST_FAULTS = ("http429", "http5xx")


@dataclass(frozen=True)
class FaultConfig:
    disconnect: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    latency: float = 0.0
    malformed: float = 0.0
    badvalue: float = 0.0
    stall: float = 0.0
    http429: float = 0.0
    http5xx: float = 0.0
    cut: float | None = None
    latency_ms: float = 800.0
    stall_s: float = 3.0

    @property
    def any_message_fault(self) -> bool:
        return any(getattr(self, k) > 0 for k in MESSAGE_FAULTS)

    @classmethod
    def parse(cls, spec: str | None) -> "FaultConfig":
        """``"drop=0.001,cut=30"`` -> FaultConfig; ValueError names the bad item."""
        if not spec or not spec.strip():
            return cls()
        known = {f.name for f in fields(cls)}
        vals: dict[str, Any] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, raw = item.partition("=")
            name = name.strip().lower()
            if not sep or name not in known:
                raise ValueError(f"faults: unknown or malformed item {item!r} "
                                 f"(known: {', '.join(sorted(known))})")
            try:
                v = float(raw)
            except ValueError:
                raise ValueError(f"faults: {name} must be a number, got {raw!r}") from None
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"faults: {name} must be a finite number >= 0, got {raw!r}")
            if name in MESSAGE_FAULTS + REST_FAULTS and v > 1:
                raise ValueError(f"faults: {name} is a probability in [0, 1], got {raw!r}")
            if name == "cut" and v <= 0:
                raise ValueError("faults: cut must be > 0 seconds")
            vals[name] = v
        return cls(**vals)


class MessageFaults:
    """Per-connection fault decisions (the RNG state lives here)."""

    def __init__(self, cfg: FaultConfig, seed: int, conn_ordinal: int):
        self.cfg = cfg
        self.rng = random.Random(f"{seed}/{conn_ordinal}")
        self.active = cfg.any_message_fault
        # cumulative thresholds: one uniform draw picks at most one fault per message
        acc, table = 0.0, []
        for k in MESSAGE_FAULTS:
            p = getattr(cfg, k)
            if p > 0:
                acc += p
                table.append((acc, k))
        self._table = table

    def pick(self) -> str | None:
        """The fault for the next message, or None."""
        if not self.active:
            return None
        u = self.rng.random()
        for acc, kind in self._table:
            if u < acc:
                return kind
        return None

    def malformed(self, frame: bytes) -> bytes:
        cut = max(1, int(len(frame) * self.rng.uniform(0.2, 0.9)))
        return frame[:cut]

    def bad_value(self, data: dict[str, Any], stream: str | None) -> bytes:
        """A syntactically valid message carrying a bad value (for the decoder's checks)."""
        d = dict(data)
        kind = self.rng.randrange(5)
        if kind == 0:
            d["e"] = "unknownEvent"
        elif kind == 1:  # wrong field type: id / time as a string
            key = "a" if "a" in d and d.get("e") == "aggTrade" else ("u" if "u" in d else "E")
            d[key] = str(d.get(key))
        elif kind == 2:
            _set_qty(d, "NaN")
        elif kind == 3:
            _set_qty(d, "-1.000")
        else:
            d.pop("s", None)
        body = orjson.dumps(d)
        if stream is None:
            return body
        return b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"


def _set_qty(d: dict[str, Any], value: str) -> None:
    if d.get("e") == "aggTrade":
        d["q"] = value
    elif d.get("e") == "bookTicker":
        d["B"] = value
    elif d.get("b"):
        d["b"] = [[d["b"][0][0], value]] + list(d["b"][1:])
    else:
        d["E"] = value


class RestFaults:
    """Per-simulator REST fault decisions."""

    def __init__(self, cfg: FaultConfig, seed: int):
        self.cfg = cfg
        self.rng = random.Random(f"{seed}/rest")

    def pick(self) -> int | None:
        """An HTTP status to fail this request with, or None."""
        c = self.cfg
        if c.http429 <= 0 and c.http5xx <= 0:
            return None
        u = self.rng.random()
        if u < c.http429:
            return 429
        if u < c.http429 + c.http5xx:
            return self.rng.choice((500, 502, 503, 504))
        return None
