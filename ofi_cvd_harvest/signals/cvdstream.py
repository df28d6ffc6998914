"""CVD and its z (docs/signals.md "CVD") as a per-trade state machine on :mod:`.zstream` —
the streaming twin of ``cvd.py``: fed the trades of the batch window in the same order it gives
the ``cvd`` table's ``t``, ``delta``, ``cvd``, ``z_raw``, ``z_cvd``, ``scale``, ``sigma_floor``,
``floor_used`` (parity contract in docs/signals.md "Two forms, one engine").

A session is the UTC date of the trade's own event time (the level restarts at 0 there); the
engine clock ``t`` is the running max of event time, as ``prices.py`` builds it. At most two
sessions are kept (a late trade of yesterday still adds to yesterday's level).
"""

from __future__ import annotations

import math
from array import array

from ..settings import SignalSettings
from .zparams import MAD_TO_SIGMA, MIN_SCALE, ZParams
from .zstream import RollingMad, WarmUp, ZStream

DAY_MS = 86_400_000


# the fields of the tuple ``CvdStream.update`` returns (a plain tuple: it is made per trade)
CVD_ROW = ("t", "delta", "cvd", "z_raw", "z_cvd", "scale", "sigma_floor", "floor_used")


class LevelStream:
    """``Z_MODE=level`` on one session: (cvd − mean) / max(std, floor, 1e-9) over the previous
    ``level_window`` levels (mean of ≥ 1, sample std of ≥ 2) and the MAD floor of the previous
    ``floor_window`` levels. Mean and deviation are two exact (``math.fsum``) passes over the
    window (kept as a ring; the order does not matter to exact sums): O(W) but immune to the
    cancellation of a running sum of squares."""

    __slots__ = ("p", "prev", "head", "window", "mad", "warm", "kc")

    def __init__(self, p: ZParams, window: int):
        self.p = p
        self.prev = array("d")
        self.head = 0
        self.window = int(window)
        self.mad = RollingMad(p.floor_window)
        self.warm = WarmUp(p)
        self.kc = p.mad_multiplier * MAD_TO_SIGMA

    def update(self, t: int, x: float) -> tuple[float | None, float | None, float, float | None, bool]:
        prev = self.prev
        n = len(prev)
        mean = math.fsum(prev) / n if n else None
        std = None
        if n >= 2 and self.p.scale_mode != "mad":
            std = math.sqrt(math.fsum([(v - mean) ** 2 for v in prev]) / (n - 1))
        mad = self.mad.mad()
        floor = None if mad is None else self.kc * mad
        scale = max(0.0 if std is None else std, 0.0 if floor is None else floor, MIN_SCALE)
        if self.p.scale_mode == "mad":
            floor_used = True
        else:
            floor_used = floor is not None and std is not None and floor >= std
        if self.warm.step(t) or mean is None:
            z_raw = z = None
        else:
            z_raw = (x - mean) / scale
            lim = self.p.winsor_limit
            z = -lim if z_raw < -lim else (lim if z_raw > lim else z_raw)
        if n == self.window:
            prev[self.head] = x
            self.head = (self.head + 1) % n
        else:
            prev.append(x)
        self.mad.push(x)
        return z_raw, z, scale, floor, floor_used


class CvdStream:
    """One symbol's CVD state; ``update`` per unique trade in ``agg_trade_id`` order."""

    __slots__ = ("p", "level_window", "level", "clock", "engine", "sessions", "day", "sess")

    def __init__(self, sig: SignalSettings):
        self.p = ZParams.from_settings(sig)
        self.level_window = sig.level_window
        self.level = sig.z_mode == "level"
        self.clock: int | None = None
        self.engine = None if self.level else ZStream(self.p)
        self.sessions: dict[int, list] = {}   # UTC day -> [cvd level, LevelStream | None]
        self.day: int | None = None           # the last row's session (the usual case)
        self.sess: list | None = None

    def _session(self, day: int) -> list:
        sess = self.sessions.get(day)
        if sess is None:
            if len(self.sessions) >= 2:
                del self.sessions[min(self.sessions)]
            sess = self.sessions[day] = [0.0, LevelStream(self.p, self.level_window) if self.level else None]
        return sess

    def update(self, event_ts_ms: int, qty: float, is_buyer_maker: bool) -> tuple:
        """The row's ``CVD_ROW`` fields: (t, delta, cvd, z_raw, z_cvd, scale, sigma_floor,
        floor_used)."""
        clock = self.clock
        t = self.clock = event_ts_ms if clock is None or event_ts_ms > clock else clock
        delta = -qty if is_buyer_maker else qty
        day = event_ts_ms // DAY_MS
        if day == self.day:
            sess = self.sess
        else:
            sess = self._session(day)
            if self.day is None or day > self.day:
                self.day, self.sess = day, sess
        sess[0] = cvd = sess[0] + delta
        if self.engine is not None:
            z_raw, z, scale, floor, used = self.engine.update(t, delta)
        else:
            z_raw, z, scale, floor, used = sess[1].update(t, cvd)
        return t, delta, cvd, z_raw, z, scale, floor, used
