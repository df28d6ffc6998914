"""A hostile exchange script for :class:`MiniExchange`: between true messages it sends what no
exchange should (docs/capture.md, "Hostile frames"), and tallies every bad frame by the
decode-error kind the capture must count it as.

* **replacements**: some true trades are sent only as a bad variant (E = 10**16, E = T = -1,
  a day away from the exchange clock, a = 2**63 + 5, negative ids, NaN/inf/negative/zero price,
  zero qty, wrong types, another or an unsubscribed stream, truncated JSON); the capture must
  skip the frame and heal the true trade through REST (``replaced`` keeps their ids);
* **extras**: junk between true frames (not JSON, unknown events, exchange errors, bogus trades
  with ids the exchange never generated, malformed and crossed book levels);
* some true depth frames are sent crossed instead (a lost book frame: a book gap, no row).

Frames are serialised with :mod:`json` (any int size); tallies are read once ``active`` is off.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Callable

DAY_MS = 86_400_000


def env(stream: str, data: dict) -> bytes:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def _raise(level: list[str], by: float) -> list[str]:
    return [f"{float(level[0]) + by:.2f}", level[1]]


class HostileScript:
    def __init__(self, now_ms: Callable[[], int], symbols: list[str]):
        self.now_ms = now_ms
        self.symbols = symbols
        self.active = False
        self.tally: Counter[str] = Counter()              # kind -> bad frames sent
        self.replaced: dict[str, list[int]] = {s: [] for s in symbols}
        self._n_trade = 0
        self._n_depth = 0
        self._lock = threading.Lock()

    # -- trade frames ---------------------------------------------------------------------------
    def _trade_variants(self, stream: str, d: dict) -> list[tuple[str, bytes]]:
        now = self.now_ms()
        other = next(s for s in self.symbols if s != d["s"]).lower() + "@aggTrade"
        return [
            ("bad_time", env(stream, {**d, "E": 10**16})),
            ("bad_time", env(stream, {**d, "E": -1, "T": -1})),
            ("bad_time", env(stream, {**d, "E": now + 2 * DAY_MS, "T": now + 2 * DAY_MS})),
            ("bad_id", env(stream, {**d, "a": 2**63 + 5})),
            ("bad_id", env(stream, {**d, "a": -d["a"]})),
            ("bad_id", env(stream, {**d, "f": -1, "l": -1})),
            ("bad_value", env(stream, {**d, "p": "NaN"})),
            ("bad_value", env(stream, {**d, "p": "Infinity"})),
            ("bad_value", env(stream, {**d, "p": "-" + d["p"]})),
            ("bad_value", env(stream, {**d, "p": "0"})),
            ("bad_value", env(stream, {**d, "q": "0"})),
            ("bad_field", env(stream, {**d, "a": str(d["a"])})),
            ("bad_field", env(stream, {**d, "m": "true"})),
            ("bad_field", env(stream, {**d, "p": [d["p"]]})),
            ("unknown_stream", env("dogeusdt@aggTrade", d)),
            ("unknown_stream", env(other, d)),          # a subscribed stream, the wrong symbol
            ("malformed_json", env(stream, d)[:45]),
        ]

    def _trade_extras(self, stream: str, d: dict) -> list[tuple[str, bytes]]:
        bogus = d["a"] + 10**15       # an id the exchange never generated
        return [
            ("malformed_json", b"this is not json"),
            ("unknown_event", env(stream, {"e": "mysteryEvent", "E": self.now_ms(), "s": d["s"]})),
            ("exchange_error", b'{"code":-1003,"msg":"Too many requests."}'),
            ("bad_id", env(stream, {**d, "a": 2**63 + 5})),
            ("bad_value", env(stream, {**d, "a": bogus, "p": "nan"})),
            ("bad_time", env(stream, {**d, "a": bogus, "E": 10**16})),
            ("unknown_stream", env("dogeusdt@aggTrade", {**d, "a": bogus, "s": "DOGEUSDT"})),
            ("malformed_json", b"[1, 2, 3]"),
        ]

    # -- depth frames ---------------------------------------------------------------------------
    def _depth_extras(self, stream: str, d: dict) -> list[tuple[str, bytes]]:
        return [
            ("bad_time", env(stream, {**d, "E": 10**16})),
            ("bad_time", env(stream, {**d, "E": -1, "T": -1})),
            ("bad_id", env(stream, {**d, "U": -1})),
            ("bad_id", env(stream, {**d, "u": 2**63 + 5})),
            ("bad_field", env(stream, {**d, "b": [["1"]]})),
            ("bad_field", env(stream, {**d, "a": [["x", "1"]]})),
            ("bad_value", env(stream, {**d, "a": [[d["a"][0][0], "-1"]] + d["a"][1:]})),
            ("bad_value", env(stream, {**d, "b": [["NaN", "1"]] + d["b"][1:]})),
            ("crossed_book", env(stream, {**d, "b": [_raise(d["a"][0], 1.0)] + d["b"]})),
            ("unknown_stream", env("dogeusdt@depth10@100ms", d)),
        ]

    # -- the MiniExchange filter ----------------------------------------------------------------
    def __call__(self, stream: str, data: dict) -> list[bytes]:
        true = env(stream, data)
        if not self.active:
            return [true]
        with self._lock:
            e = data.get("e")
            out: list[tuple[str, bytes]] = []
            if e == "aggTrade":
                self._n_trade += 1
                n = self._n_trade
                if n % 3 == 0:                      # the true trade is sent only as a bad variant
                    vs = self._trade_variants(stream, data)
                    out.append(vs[(n // 3) % len(vs)])
                    self.replaced[data["s"]].append(data["a"])
                    frames = []
                else:
                    frames = [true]
                if n % 2 == 0:
                    xs = self._trade_extras(stream, data)
                    out.append(xs[(n // 2) % len(xs)])
            elif e == "depthUpdate" and data.get("b") and data.get("a"):
                self._n_depth += 1
                n = self._n_depth
                if n % 4 == 0:                      # the true frame only crossed: a lost frame
                    crossed = {**data, "b": [_raise(data["a"][0], 0.5)] + data["b"]}
                    out.append(("crossed_book", env(stream, crossed)))
                    frames = []
                else:
                    frames = [true]
                xs = self._depth_extras(stream, data)
                out.insert(0, xs[n % len(xs)])     # before the true frame: would overtake it
            else:
                return [true]
            for kind, _ in out:
                self.tally[kind] += 1
            return [f for _, f in out] + frames
