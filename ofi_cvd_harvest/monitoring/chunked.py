"""A symbol's staged trades through :class:`~.live_cvd.LiveCvd` as one vectorised chunk
(docs/monitoring.md "CVD scale metrics and live signal events", docs/signals.md "Three forms,
one engine: the chunked form").

Why: at thousands of trades a second per symbol the per-row form's ≈ 6 µs of Python per trade
is the capture's largest cost (docs/performance.md §7). The chunk runs the CVD z engine
(:func:`~ofi_cvd_harvest.signals.zchunk.cvd_chunk`), the event machines
(:mod:`~ofi_cvd_harvest.signals.eventchunk`) and the window counts in numpy on the symbol's
carried state and leaves every count, bucket and machine as the per-row path would: the
counters, the window statistics and the last z equal the per-row path's (tested).
"""

from __future__ import annotations

import math

import numpy as np

from ..signals.eventchunk import divergence_chunk, threshold_chunk
from ..signals.zchunk import cvd_chunk

BINS_PER_OCTAVE = 128
_EDGE = 1e-6        # log2·128 this close to a bin edge: binned by math.log2, as the per-row path


def scale_bins(scale: np.ndarray) -> np.ndarray:
    """``floor(log2(scale) · 128)`` per value, equal to the per-row ``math`` result (numpy's
    log2 may differ from libm's in the last bit, which matters only next to a bin edge)."""
    v = np.log2(scale) * BINS_PER_OCTAVE
    b = np.floor(v).astype(np.int64)
    near = np.flatnonzero(np.abs(v - np.rint(v)) < _EDGE)
    for i in near.tolist():
        b[i] = math.floor(math.log2(float(scale[i])) * BINS_PER_OCTAVE)
    return b


def chunk_into(live, st, ts: list, qty: list, ibm: list, px: list) -> bool:
    """Trades of one symbol (lists, in arrival order) into ``st`` (a ``live_cvd._Symbol``) of
    ``live``; False (nothing changed) where the per-row form must run instead."""
    ts_a = np.array(ts, dtype=np.int64)
    res = cvd_chunk(st.cvd, ts_a, np.array(qty, dtype=np.float64), np.array(ibm, dtype=bool))
    if res is None:
        return False
    t, delta, z, scale, floor_used, null = res
    st.trades += len(t)
    keys = t // live.bucket_ms
    warm = np.flatnonzero(~null)
    if len(warm):
        kw = keys[warm]
        bins = scale_bins(scale[warm])
        fu = floor_used[warm]
        cuts = [0, *(np.flatnonzero(kw[1:] != kw[:-1]) + 1).tolist(), len(warm)]
        for a, b in zip(cuts[:-1], cuts[1:]):
            key = int(kw[a])
            if key != st.key:
                live._roll(st, key)
            cur = st.cur
            hits = int(np.count_nonzero(fu[a:b]))
            cur[1] += b - a
            cur[2] += hits
            vals, counts = np.unique(bins[a:b], return_counts=True)
            h = cur[3]
            for v, c in zip(vals.tolist(), counts.tolist()):
                h[v] = h.get(v, 0) + c
        zw = z[warm]
        tw = t[warm]
        st.last_z = float(zw[-1])
        fired = len(threshold_chunk(st.up, tw, zw)) + len(threshold_chunk(st.down, tw, zw))
        if fired:
            st.fires[0].inc(fired)
    last = int(keys[-1])
    if last != st.key:
        live._roll(st, last)
    p = np.array(px, dtype=np.float64)
    priced = ~np.isnan(p)
    if priced.any():
        if priced.all():
            bull, bear = divergence_chunk(st.div, t, p, delta, st.cache)
        else:
            bull, bear = divergence_chunk(st.div, t[priced], p[priced], delta[priced], st.cache)
        if bull:
            st.fires[1].inc(len(bull))
        if bear:
            st.fires[2].inc(len(bear))
    return True
