"""Run the streaming engine (signals/zstream, cvdstream, eventstream) over the rows of a batch
frame and compare column by column: the parity contract of docs/signals.md "Two forms, one
engine" (equal to 1e-9 relative, nulls in the same rows, booleans equal)."""

from __future__ import annotations

import math

import polars as pl

from ofi_cvd_harvest.settings import SignalSettings
from ofi_cvd_harvest.signals.cvdstream import CVD_ROW, CvdStream
from ofi_cvd_harvest.signals.eventstream import DivergenceMachine, ThresholdMachine

REL = 1e-9


def assert_same(name: str, batch: list, stream: list, rel: float = REL,
                abs_tols: list | None = None) -> None:
    """``abs_tols`` (per row): where a value is a difference of nearly equal operands, 1e-9
    relative to the *operands* -- relative to a result near 0 no two summation orders agree."""
    assert len(batch) == len(stream), f"{name}: {len(batch)} batch rows vs {len(stream)} streamed"
    for i, (a, b) in enumerate(zip(batch, stream)):
        if a is None or b is None or isinstance(a, bool):
            assert a == b, f"{name} row {i}: batch {a!r} vs stream {b!r}"
        elif not math.isclose(a, b, rel_tol=rel, abs_tol=abs_tols[i] if abs_tols else 0.0):
            raise AssertionError(f"{name} row {i}: batch {a!r} vs stream {b!r}")


def stream_cvd(trades: pl.DataFrame, sig: SignalSettings) -> dict[str, list]:
    """The cvd columns (and the cvd_extreme / divergence fires) of ``trades`` (event_ts_ms, qty,
    is_buyer_maker, price in agg_trade_id order) through one :class:`CvdStream`."""
    eng = CvdStream(sig)
    up = ThresholdMachine(sig.extreme_threshold, sig.extreme_rearm, sig.rearm_sec, sig.cooldown_sec, 1)
    dn = ThresholdMachine(sig.extreme_threshold, sig.extreme_rearm, sig.rearm_sec, sig.cooldown_sec, -1)
    div = DivergenceMachine(sig)
    cols: dict[str, list] = {k: [] for k in CVD_ROW}
    fires: dict[str, list] = {"up": [], "down": [], "bull": [], "bear": []}
    price = trades["price"].to_list() if "price" in trades.columns else [1.0] * len(trades)
    for i, (e, q, m) in enumerate(zip(trades["event_ts_ms"].to_list(), trades["qty"].to_list(),
                                      trades["is_buyer_maker"].to_list())):
        row = eng.update(e, q, m)
        for k, v in zip(cols, row):
            cols[k].append(v)
        t, delta, z = row[0], row[1], row[4]
        if up.update(t, z):
            fires["up"].append(i)
        if dn.update(t, z):
            fires["down"].append(i)
        bull, bear = div.update(t, price[i], delta)
        if bull:
            fires["bull"].append(i)
        if bear:
            fires["bear"].append(i)
    return {**cols, **{f"fires_{k}": v for k, v in fires.items()}}


def assert_cvd_parity(batch: pl.DataFrame, streamed: dict[str, list]) -> None:
    # z = (x - mean) / scale: x == mean in one form can be 1 ulp of x apart in the other (the
    # batch mean is polars' rolling sum, the streaming one math.fsum), so z is held to 1e-9
    # relative to |x| / scale (x: the level or the delta), what 1e-9 on its operands allows
    tol = [REL * (abs(a) + abs(b)) / s if a is not None and b is not None and s else 0.0
           for a, b, s in zip(batch["cvd"].to_list(), batch["delta"].to_list(),
                              batch["scale"].to_list())]
    for col in ("t", "delta", "cvd", "scale", "sigma_floor", "floor_used"):
        assert_same(col, batch[col].to_list(), streamed[col])
    for col in ("z_raw", "z_cvd"):
        assert_same(col, batch[col].to_list(), streamed[col], abs_tols=tol)
