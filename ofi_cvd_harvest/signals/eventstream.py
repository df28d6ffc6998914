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
  Window minima/maxima are monotonic deques (amortised O(1) per row), one entry per time.
"""

from __future__ import annotations

from collections import deque

from ..settings import SignalSettings

_INF = float("inf")


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
        r = self.rearm
        if -r < z < r:                   # |z| < rearm (no abs call: once per trade)
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


class DivergenceMachine:
    """Window extremes over strictly earlier times, kept as monotonic deques of (time, value)
    with one entry per time: the rows of the current time are held as their extremes
    (``pl``/``ph``: price low/high, ``cl``/``ch``: cumulative delta low/high) and pushed when
    the time moves on — the same window extremes as pushing every row (an entry never wins
    against a same-time entry it does not beat, and both leave together). Each deque's front
    and back values are also kept in slots (``f_*``, ``b_*``; :meth:`sync` sets them from the
    deques), and fronts older than the window leave only when the window start passes ``exp``
    (≤ every front's time; infinity: all four empty — they empty together, every push goes to
    all four). Why: issue 15 — the live monitor runs this on every trade of hundreds of symbols,
    and reading the deques' old entries was most of its cost."""

    __slots__ = ("window_ms", "cooldown_ms", "t0", "ready_t", "cum", "cur_t", "pl", "ph", "cl",
                 "ch", "exp", "p_lo", "p_hi", "c_lo", "c_hi", "f_pl", "f_ph", "f_cl", "f_ch",
                 "b_pl", "b_ph", "b_cl", "b_ch", "prev_bull", "prev_bear", "last_bull",
                 "last_bear")

    def __init__(self, sig: SignalSettings):
        self.window_ms = int(sig.divergence_window_sec * 1000)
        self.cooldown_ms = int(round(sig.divergence_cooldown_sec * 1000))
        self.t0: int | None = None
        self.ready_t = 0
        self.cum = 0.0
        self.cur_t: int | None = None       # time of the rows not yet pushed (held as pl..ch)
        self.pl = self.ph = self.cl = self.ch = 0.0
        # window extremes over strictly earlier times: price low/high, cum-delta low/high
        self.p_lo: deque = deque()
        self.p_hi: deque = deque()
        self.c_lo: deque = deque()
        self.c_hi: deque = deque()
        self.sync()
        self.prev_bull = self.prev_bear = False
        self.last_bull: int | None = None
        self.last_bear: int | None = None

    @property
    def pending(self) -> tuple:
        """The rows at the current time, as their extremes (price low, high, cum low, high)."""
        return () if self.cur_t is None else (self.pl, self.ph, self.cl, self.ch)

    def sync(self) -> None:
        """Front/back slots and ``exp`` from the deques (after a change made elsewhere, e.g. the
        chunked form). Empty: backs that pop nothing, fronts unused."""
        qs = (self.p_lo, self.p_hi, self.c_lo, self.c_hi)
        self.f_pl, self.f_ph, self.f_cl, self.f_ch = (q[0][1] if q else 0.0 for q in qs)
        self.b_pl, self.b_ph, self.b_cl, self.b_ch = (q[-1][1] if q else e for q, e in
                                                      zip(qs, (-_INF, _INF, -_INF, _INF)))
        self.exp = min((q[0][0] for q in qs if q), default=_INF)

    def _drop(self, lo: int) -> None:
        """Entries older than ``lo`` leave the fronts."""
        for q in (self.p_lo, self.p_hi, self.c_lo, self.c_hi):
            while q and q[0][0] < lo:
                q.popleft()
        self.sync()

    def update(self, t: int, price: float, delta: float) -> tuple[bool, bool]:
        """(bullish fires, bearish fires) for the row at engine time ``t`` (non-decreasing)."""
        self.cum = cum = self.cum + delta
        ct = self.cur_t
        if t != ct:                         # the rows at ct become "strictly earlier in time"
            if ct is None:
                self.t0 = t
                self.ready_t = t + self.window_ms
            else:                           # monotonic pushes, inline (once per trade)
                empty = self.exp == _INF
                v = self.pl
                q = self.p_lo
                if self.b_pl >= v:
                    q.pop()
                    while q and q[-1][1] >= v:
                        q.pop()
                    if not q:
                        self.f_pl = v
                q.append((ct, v))
                self.b_pl = v
                v = self.ph
                q = self.p_hi
                if self.b_ph <= v:
                    q.pop()
                    while q and q[-1][1] <= v:
                        q.pop()
                    if not q:
                        self.f_ph = v
                q.append((ct, v))
                self.b_ph = v
                v = self.cl
                q = self.c_lo
                if self.b_cl >= v:
                    q.pop()
                    while q and q[-1][1] >= v:
                        q.pop()
                    if not q:
                        self.f_cl = v
                q.append((ct, v))
                self.b_cl = v
                v = self.ch
                q = self.c_hi
                if self.b_ch <= v:
                    q.pop()
                    while q and q[-1][1] <= v:
                        q.pop()
                    if not q:
                        self.f_ch = v
                q.append((ct, v))
                self.b_ch = v
                if empty:
                    self.f_pl, self.f_ph, self.f_cl, self.f_ch = self.pl, self.ph, self.cl, self.ch
                    self.exp = ct
            self.cur_t = t
            self.pl = self.ph = price
            self.cl = self.ch = cum
        else:
            if price < self.pl:
                self.pl = price
            elif price > self.ph:
                self.ph = price
            if cum < self.cl:
                self.cl = cum
            elif cum > self.ch:
                self.ch = cum
        if t - self.window_ms > self.exp:   # a front may have left the window
            self._drop(t - self.window_ms)
        if t < self.ready_t or self.exp == _INF:
            self.prev_bull = self.prev_bear = False
            return False, False
        bull = price < self.f_pl and cum >= self.f_cl
        bear = price > self.f_ph and cum <= self.f_ch
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
