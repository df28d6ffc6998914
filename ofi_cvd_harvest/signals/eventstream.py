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


class _WindowExtreme:
    """Min (``sign`` +1) or max (−1) of the values pushed at engine times in [t − window, t)."""

    __slots__ = ("sign", "q")

    def __init__(self, sign: int):
        self.sign = sign
        self.q: deque[tuple[int, float]] = deque()

    def push(self, t: int, v: float) -> None:
        q, s = self.q, self.sign
        while q and (q[-1][1] - v) * s >= 0:
            q.pop()
        q.append((t, v))

    def get(self, lo: int) -> float | None:
        q = self.q
        while q and q[0][0] < lo:
            q.popleft()
        return q[0][1] if q else None


class DivergenceMachine:
    __slots__ = ("window_ms", "cooldown_ms", "t0", "cum", "pending", "cur_t", "lows", "prev",
                 "last_fire")

    def __init__(self, sig: SignalSettings):
        self.window_ms = int(sig.divergence_window_sec * 1000)
        self.cooldown_ms = int(round(sig.divergence_cooldown_sec * 1000))
        self.t0: int | None = None
        self.cum = 0.0
        self.pending: list[tuple[float, float]] = []   # rows at the current time (not yet past)
        self.cur_t: int | None = None
        # price low, price high, cum-delta low, cum-delta high
        self.lows = (_WindowExtreme(1), _WindowExtreme(-1), _WindowExtreme(1), _WindowExtreme(-1))
        self.prev = [False, False]          # bull, bear on the previous row
        self.last_fire: list[int | None] = [None, None]

    def update(self, t: int, price: float, delta: float) -> tuple[bool, bool]:
        """(bullish fires, bearish fires) for the row at engine time ``t``."""
        if self.t0 is None:
            self.t0 = t
        self.cum = cum = self.cum + delta
        if t != self.cur_t:                 # earlier rows become "strictly earlier in time"
            pl, ph, cl, ch = self.lows
            for p, c in self.pending:
                pl.push(self.cur_t, p)
                ph.push(self.cur_t, p)
                cl.push(self.cur_t, c)
                ch.push(self.cur_t, c)
            self.pending.clear()
            self.cur_t = t
        self.pending.append((price, cum))
        lo = t - self.window_ms
        p_low, p_high, c_low, c_high = (w.get(lo) for w in self.lows)
        ready = t >= self.t0 + self.window_ms
        bull = ready and p_low is not None and price < p_low and cum >= c_low
        bear = ready and p_high is not None and price > p_high and cum <= c_high
        fired = []
        for i, now in enumerate((bull, bear)):
            start = now and not self.prev[i]
            last = self.last_fire[i]
            fire = start and (last is None or t >= last + self.cooldown_ms)
            if fire:
                self.last_fire[i] = t
            fired.append(fire)
        self.prev[0], self.prev[1] = bull, bear
        return fired[0], fired[1]
