"""The study's chart as a small SVG (docs/research.md): IC by horizon with 95 % intervals per
signal, and the mean forward-return curve after each event type (signed by its direction).

SVG is text: no plotting dependency (none is installed), any browser shows it, and the file is
a function of the table's values (fixed number formatting), like every derived artefact.
"""

from __future__ import annotations

import math

import polars as pl

from .study import ALL, HORIZONS_SEC, IC_SIGNALS

W, H, PAD = 420, 260, 44
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _panel(x0: int, title: str, series: list[tuple[str, list[tuple[float, float, float, float]]]],
           ylabel: str) -> list[str]:
    """One panel: x = log horizon, each series a list of (h, value, lo, hi) (lo/hi may be NaN)."""
    vals = [v for _, pts in series for p in pts for v in p[1:] if math.isfinite(v)] or [0.0]
    lo, hi = min(min(vals), 0.0), max(max(vals), 0.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    lx = [math.log10(h) for h in HORIZONS_SEC]

    def px(h: float) -> float:
        return x0 + PAD + (math.log10(h) - lx[0]) / (lx[-1] - lx[0]) * (W - 2 * PAD)

    def py(v: float) -> float:
        return PAD + (hi - v) / (hi - lo) * (H - 2 * PAD)

    out = [f'<text x="{x0 + W / 2:.1f}" y="18" text-anchor="middle" font-size="13">{title}</text>',
           f'<line x1="{x0 + PAD}" y1="{py(0):.1f}" x2="{x0 + W - PAD}" y2="{py(0):.1f}" stroke="#999"/>',
           f'<text x="{x0 + 4}" y="{PAD - 8}" font-size="10">{ylabel}</text>',
           f'<text x="{x0 + 2}" y="{py(hi) + 4:.1f}" font-size="9">{hi:.3g}</text>',
           f'<text x="{x0 + 2}" y="{py(lo) + 4:.1f}" font-size="9">{lo:.3g}</text>']
    for h in HORIZONS_SEC:
        out.append(f'<text x="{px(h):.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="9">{h} s</text>')
    for k, (name, pts) in enumerate(series):
        c = COLOURS[k % len(COLOURS)]
        good = [(h, v, a, b) for h, v, a, b in pts if math.isfinite(v)]
        if len(good) > 1:
            path = " ".join(f"{px(h):.1f},{py(v):.1f}" for h, v, _, _ in good)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        for h, v, a, b in good:
            if math.isfinite(a) and math.isfinite(b):
                out.append(f'<line x1="{px(h):.1f}" y1="{py(a):.1f}" x2="{px(h):.1f}" y2="{py(b):.1f}" stroke="{c}"/>')
            out.append(f'<circle cx="{px(h):.1f}" cy="{py(v):.1f}" r="2.5" fill="{c}"/>')
        out.append(f'<text x="{x0 + W - PAD + 2}" y="{PAD + 12 * k}" font-size="9" fill="{c}">{name}</text>')
    return out


def _points(df: pl.DataFrame, measure: str, signal: str, direction: str) -> list[tuple]:
    pts = []
    for h in HORIZONS_SEC:
        r = df.filter((pl.col("measure") == measure) & (pl.col("signal") == signal)
                      & (pl.col("direction") == direction) & (pl.col("regime") == ALL)
                      & (pl.col("horizon_sec") == h))
        row = r.row(0, named=True) if len(r) else {}
        pts.append((h, *(math.nan if row.get(k) is None else row[k]
                         for k in ("value", "ci_low", "ci_high"))))
    return pts


def svg(df: pl.DataFrame, title: str) -> str:
    ic = [(col, _points(df, "ic", col, "na")) for col, _ in IC_SIGNALS]
    types = df.filter((pl.col("measure") == "event_count") & (pl.col("direction") == "both")
                      & (pl.col("regime") == ALL))["signal"].to_list()
    ev = [(t, _points(df, "event_mean_bps", t, "both")) for t in types]
    body = _panel(0, "IC by horizon (95 % CI)", ic, "Spearman IC")
    body += _panel(W + 90, "Mean return after events (signed)", ev, "bps")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W + 160}" height="{H + 16}" '
            f'font-family="sans-serif"><title>{title}</title>'
            + "".join(body) + "</svg>\n")
