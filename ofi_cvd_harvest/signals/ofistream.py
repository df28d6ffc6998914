"""Multi-level OFI and fusion (docs/signals.md "OFI", "Fusion") as per-row state machines on
:mod:`.zstream` — the streaming twins of ``ofi.py`` and ``fusion.py`` (parity contract in
docs/signals.md "Two forms, one engine").

Input order is the caller's: the batch first deduplicates book rows by ``final_update_id`` and
orders them by (E, u); a live feed delivers one connection's rows in that order already. Fusion
needs the CVD rows and the book rows merged by engine time, a CVD row before a book row of the
same millisecond (the batch's backward as-of join takes trades at or before the book row).
"""

from __future__ import annotations

from ..settings import SignalSettings
from .zparams import ZParams
from .zstream import ZStream

INF = float("inf")


class OfiStream:
    """``update(t, bid_px, bid_qty, ask_px, ask_qty, gap)`` → (ofi_value, gap, ofi_z, scale);
    lists may be shorter than ``ofi_levels`` (a missing level is an empty level)."""

    __slots__ = ("weights", "levels", "prev", "engine")

    def __init__(self, sig: SignalSettings):
        self.levels = sig.ofi_levels
        self.weights = tuple(sig.ofi_level_weights[: sig.ofi_levels])
        self.prev: list[tuple[float, float, float, float]] | None = None
        self.engine = ZStream(ZParams.from_settings(sig))

    def _flat(self, bid_px, bid_qty, ask_px, ask_qty) -> list[tuple[float, float, float, float]]:
        out = []
        nb, na = len(bid_px), len(ask_px)
        for m in range(self.levels):
            out.append((bid_px[m] if m < nb else -INF, bid_qty[m] if m < nb else 0.0,
                        ask_px[m] if m < na else INF, ask_qty[m] if m < na else 0.0))
        return out

    def update(self, t: int, bid_px, bid_qty, ask_px, ask_qty, gap: bool
               ) -> tuple[float, bool, float | None, float]:
        cur = self._flat(bid_px, bid_qty, ask_px, ask_qty)
        prev = self.prev
        self.prev = cur
        gap = bool(gap) or prev is None
        if gap:
            value = 0.0
        else:
            value = None
            for w, (bp, bq, ap, aq), (pbp, pbq, pap, paq) in zip(self.weights, cur, prev):
                e = (((bq if bp >= pbp else 0.0) - (pbq if bp <= pbp else 0.0))
                     - (aq if ap <= pap else 0.0)) + (paq if ap >= pap else 0.0)
                term = w * e
                value = term if value is None else value + term   # level order, as the batch
        _, z, scale, _, _ = self.engine.update(t, value)
        return value, gap, z, scale


class FusionStream:
    """``cvd(t, z_cvd)`` per CVD row and ``update(t, ofi_z)`` per OFI row (merged by engine
    time) → (z_cvd used, score, score_z): the latest CVD row at or before ``t`` within the
    tolerance (its z, null → 0; none or older → 0)."""

    __slots__ = ("tol", "w_ofi", "w_cvd", "last_t", "last_z", "engine")

    def __init__(self, sig: SignalSettings):
        self.tol = sig.fusion_tolerance_ms
        self.w_ofi = sig.w_ofi
        self.w_cvd = sig.w_cvd
        self.last_t: int | None = None
        self.last_z: float | None = None
        self.engine = ZStream(ZParams.from_settings(sig))

    def cvd(self, t: int, z_cvd: float | None) -> None:
        self.last_t, self.last_z = t, z_cvd

    def update(self, t: int, ofi_z: float | None) -> tuple[float, float, float | None]:
        zc = self.last_z if (self.last_t is not None and t - self.last_t <= self.tol
                             and self.last_z is not None) else 0.0
        oz = 0.0 if ofi_z is None else ofi_z
        score = self.w_ofi * oz + self.w_cvd * zc
        _, z, _, _, _ = self.engine.update(t, score)
        return zc, score, z
