"""Signal event state machines (docs/signals.md "Events") row by row — the streaming twin of
``events.py``: fed the same rows it fires on the same rows (parity contract in docs/signals.md
"Two forms, one engine").

* :class:`ThresholdMachine` — one type and direction: fires when z is past the threshold while
  armed (armed at the start); re-arms at the first row where |z| has stayed below the re-arm
  level for ``rearm_sec`` of engine time (from the first row of that below-run) **and**
  ``cooldown_sec`` have passed since it fired. Null z neither breaks nor extends a below-run.
* :class:`DivergenceMachine` — price sets a new low (high) against the rows of the previous
  ``window_sec`` (strictly earlier engine time) while the cumulative delta does not; an episode
  fires on its first row unless within ``cooldown_sec`` of the last fire of that direction.
  Window minima/maxima are monotonic deques (amortised O(1) per row).
"""

from __future__ import annotations

from collections import deque

from ..settings import SignalSettings


class ThresholdMachine:
    __slots__ = ("threshold", "rearm", "rearm_ms", "cooldown_ms", "up", "armed", "run_start",
                 "last_fire")

    def __init__(self, threshold: float, rearm: float, rearm_sec: float, cooldown_sec: float,
                 direction: int):
        self.threshold = float(threshold)
        self.rearm = float(rearm)
        self.rearm_ms = int(round(rearm_sec * 1000))
        self.cooldown_ms = int(round(cooldown_sec * 1000))
        self.up = direction > 0
        self.armed = True
        self.run_start: int | None = None   # engine time of the first row of the below-run
        self.last_fire: int | None = None

    def update(self, t: int, z: float | None) -> bool:
        """True if the row at engine time ``t`` (non-decreasing) with z ``z`` fires."""
        if z is None or z != z:          # null (warm-up) z: no effect
            return False
        if abs(z) < self.rearm:
            if self.run_start is None:
                self.run_start = t
            if (not self.armed and t - self.run_start >= self.rearm_ms
                    and t >= self.last_fire + self.cooldown_ms):
                self.armed = True
            return False
        self.run_start = None
        if self.armed and (z > self.threshold if self.up else z < -self.threshold):
            self.armed = False
            self.last_fire = t
            return True
        return False


def _front(q: deque, lo: int) -> float | None:
    """The extreme of a monotonic deque of (time, value) — values improving towards the back,
    pushed by :meth:`DivergenceMachine.update` — over entries at time >= ``lo`` (older ones
    leave for good)."""
    while q and q[0][0] < lo:
        q.popleft()
    return q[0][1] if q else None


class DivergenceMachine:
    __slots__ = ("window_ms", "cooldown_ms", "t0", "ready_t", "cum", "pending", "cur_t",
                 "p_lo", "p_hi", "c_lo", "c_hi", "prev_bull", "prev_bear", "last_bull",
                 "last_bear")

    def __init__(self, sig: SignalSettings):
        self.window_ms = int(sig.divergence_window_sec * 1000)
        self.cooldown_ms = int(round(sig.divergence_cooldown_sec * 1000))
        self.t0: int | None = None
        self.ready_t = 0
        self.cum = 0.0
        self.pending: list[tuple[float, float]] = []   # rows at the current time (not yet past)
        self.cur_t: int | None = None
        # window extremes over strictly earlier times: price low/high, cum-delta low/high
        self.p_lo: deque = deque()
        self.p_hi: deque = deque()
        self.c_lo: deque = deque()
        self.c_hi: deque = deque()
        self.prev_bull = self.prev_bear = False
        self.last_bull: int | None = None
        self.last_bear: int | None = None

    def update(self, t: int, price: float, delta: float) -> tuple[bool, bool]:
        """(bullish fires, bearish fires) for the row at engine time ``t`` (non-decreasing)."""
        if self.t0 is None:
            self.t0 = t
            self.ready_t = t + self.window_ms
        self.cum = cum = self.cum + delta
        if t != self.cur_t:                 # earlier rows become "strictly earlier in time"
            ct = self.cur_t
            p_lo, p_hi, c_lo, c_hi = self.p_lo, self.p_hi, self.c_lo, self.c_hi
            for p, c in self.pending:       # monotonic pushes, inline (once per trade)
                while p_lo and p_lo[-1][1] >= p:
                    p_lo.pop()
                p_lo.append((ct, p))
                while p_hi and p_hi[-1][1] <= p:
                    p_hi.pop()
                p_hi.append((ct, p))
                while c_lo and c_lo[-1][1] >= c:
                    c_lo.pop()
                c_lo.append((ct, c))
                while c_hi and c_hi[-1][1] <= c:
                    c_hi.pop()
                c_hi.append((ct, c))
            self.pending.clear()
            self.cur_t = t
        self.pending.append((price, cum))
        lo = t - self.window_ms
        p_low = _front(self.p_lo, lo)
        p_high = _front(self.p_hi, lo)
        c_low = _front(self.c_lo, lo)
        c_high = _front(self.c_hi, lo)
        if t < self.ready_t or p_low is None:
            self.prev_bull = self.prev_bear = False
            return False, False
        bull = price < p_low and cum >= c_low
        bear = price > p_high and cum <= c_high
        fire_bull = fire_bear = False
        if bull and not self.prev_bull and (self.last_bull is None
                                            or t >= self.last_bull + self.cooldown_ms):
            self.last_bull = t
            fire_bull = True
        if bear and not self.prev_bear and (self.last_bear is None
                                            or t >= self.last_bear + self.cooldown_ms):
            self.last_bear = t
            fire_bear = True
        self.prev_bull, self.prev_bear = bull, bear
        return fire_bull, fire_bear
