"""Streaming OFI and fusion (ofistream.py) against ofi.py / fusion.py on the same rows:
docs/signals.md "Two forms, one engine"."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.signals.fusion import fusion_frame
from ofi_cvd_harvest.signals.ofi import ofi_frame
from ofi_cvd_harvest.signals.ofistream import FusionStream, OfiStream

from .helpers import settings
from .streamparity import assert_same

INF = float("inf")
PRICES = st.sampled_from([99.0, 99.5, 100.0, 100.5, 101.0])
QTYS = st.sampled_from([0.0, 0.001, 1.0, 2.5, 40.0])


def book_frame(rows: list[dict], levels: int) -> pl.DataFrame:
    """Flat book rows as ``book_from_flat`` returns them (missing level: empty level)."""
    cols: dict[str, list] = {"ts_ms": [], "final_update_id": [], "gap": []}
    for m in range(levels):
        for k in ("bp", "bq", "ap", "aq"):
            cols[f"{k}{m}"] = []
    for i, r in enumerate(rows):
        cols["ts_ms"].append(r["t"])
        cols["final_update_id"].append(i + 1)
        cols["gap"].append(r["gap"])
        for m in range(levels):
            has_b, has_a = m < len(r["bids"]), m < len(r["asks"])
            cols[f"bp{m}"].append(r["bids"][m][0] if has_b else -INF)
            cols[f"bq{m}"].append(r["bids"][m][1] if has_b else 0.0)
            cols[f"ap{m}"].append(r["asks"][m][0] if has_a else INF)
            cols[f"aq{m}"].append(r["asks"][m][1] if has_a else 0.0)
    return pl.DataFrame(cols).with_columns(pl.col("ts_ms").cum_max().alias("t"))


def stream_ofi(rows: list[dict], sig) -> dict[str, list]:
    eng = OfiStream(sig)
    out: dict[str, list] = {"ofi_value": [], "gap": [], "ofi_z": [], "scale": []}
    t = 0
    for r in rows:
        t = max(t, r["t"])
        got = eng.update(t, [p for p, _ in r["bids"]], [q for _, q in r["bids"]],
                         [p for p, _ in r["asks"]], [q for _, q in r["asks"]], r["gap"])
        for k, v in zip(out, got):
            out[k].append(v)
    return out


LEVEL = st.tuples(PRICES, QTYS)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "t": st.integers(0, 20_000), "gap": st.sampled_from([False, False, False, True]),
    "bids": st.lists(LEVEL, max_size=6), "asks": st.lists(LEVEL, max_size=6)}), min_size=1, max_size=60),
    st.integers(1, 5), st.sampled_from(["hybrid", "ewma", "mad"]))
def test_streaming_ofi_equals_batch(rows, levels, mode):
    rows = sorted(rows, key=lambda r: r["t"])
    weights = (0.4, 0.25, 0.2, 0.1, 0.05)[:levels]
    sig = settings(ofi_levels=levels, ofi_level_weights=weights, scale_mode=mode,
                   floor_window=5, warmup_rows=2).signals
    batch = ofi_frame(book_frame(rows, levels), sig)
    got = stream_ofi(rows, sig)
    for col in got:
        assert_same(col, batch[col].to_list(), got[col])


def merged_fusion(cvd: list[tuple[int, float | None]], ofi: list[tuple[int, float | None]], sig):
    """Rows merged by engine time, a CVD row before an OFI row of the same millisecond."""
    fs = FusionStream(sig)
    events = sorted([(t, 0, i) for i, (t, _) in enumerate(cvd)] + [(t, 1, i) for i, (t, _) in enumerate(ofi)])
    out: dict[str, list] = {"z_cvd": [], "score": [], "score_z": []}
    for t, kind, i in events:
        if kind == 0:
            fs.cvd(t, cvd[i][1])
        else:
            for k, v in zip(out, fs.update(t, ofi[i][1])):
                out[k].append(v)
    return out


Z = st.one_of(st.none(), st.floats(-8, 8, allow_nan=False))


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30_000), Z), max_size=60),
       st.lists(st.tuples(st.integers(0, 30_000), Z), min_size=1, max_size=60),
       st.sampled_from([1, 5000]))
def test_streaming_fusion_equals_batch_asof_join(cvd, ofi, tol):
    cvd, ofi = sorted(cvd, key=lambda r: r[0]), sorted(ofi, key=lambda r: r[0])
    sig = settings(fusion_tolerance_ms=tol, floor_window=4, warmup_rows=1).signals
    cdf = pl.DataFrame({"t": [r[0] for r in cvd], "z_cvd": [r[1] for r in cvd]},
                       schema={"t": pl.Int64, "z_cvd": pl.Float64})
    odf = pl.DataFrame({"ts_ms": [r[0] for r in ofi], "t": [r[0] for r in ofi], "ofi_z": [r[1] for r in ofi]},
                       schema={"ts_ms": pl.Int64, "t": pl.Int64, "ofi_z": pl.Float64})
    batch = fusion_frame(odf, cdf, sig)
    got = merged_fusion(cvd, ofi, sig)
    for col in got:
        assert_same(col, batch[col].to_list(), got[col])
