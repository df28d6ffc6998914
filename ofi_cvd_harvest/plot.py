"""One figure of a day (or a window of it): ``ofi-cvd-harvest plot --date D --symbol S``.

Shared UTC time axis, top to bottom: price; CVD; ``ofi_z``, ``z_cvd`` and ``score_z`` with the
event thresholds; the regime as a coloured band. Signal events are marked on the price panel
(▲ long/bullish, ▼ short/bearish, ◆ extremes), book gaps and feed reconnects are shaded on every
panel. The derived assets attach a small version to each materialisation (markdown with an
embedded PNG, shown by the Dagster UI; docs/dagster.md).

Why matplotlib (README "Dependencies"): it renders PNG itself (Agg) — plotly and bokeh need a
browser or kaleido's Chrome for a PNG — and is the library researchers already read. Cost is
kept off every other path: imported only here, lazily. A day of 2 M trades is downsampled to
``bins`` time buckets first (min/max envelope for price, the value farthest from 0 for each z, so
spikes stay visible; last value for CVD), so rendering cost does not grow with the rows.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import sys
from pathlib import Path
from typing import Any

import polars as pl

from . import read
from .storage import layout

REGIME_COLORS = {"A_H": "#d62728", "A_L": "#ff9896", "Q_H": "#1f77b4", "Q_L": "#aec7e8",
                 "warmup": "#dddddd"}
EVENT_MARKERS = {"fusion_long": ("^", "#2ca02c"), "fusion_short": ("v", "#d62728"),
                 "divergence_bullish": ("^", "#17becf"), "divergence_bearish": ("v", "#9467bd"),
                 "ofi_extreme": ("D", "#ff7f0e"), "cvd_extreme": ("D", "#8c564b")}


def _window(date: str, t_from: str | None, t_to: str | None) -> tuple[int, int]:
    lo, hi = layout.day_bounds_ms(date)

    def at(hhmm: str, name: str) -> int:
        try:
            h, m = (int(x) for x in hhmm.split(":"))
        except ValueError:
            raise ValueError(f"{name} must be HH:MM (got {hhmm!r})") from None
        if not (0 <= h <= 24 and 0 <= m < 60) or h * 60 + m > 1440:
            raise ValueError(f"{name} must be within the day 00:00..24:00 (got {hhmm!r})")
        return lo + (h * 60 + m) * 60_000

    a = at(t_from, "--from") if t_from else lo
    b = at(t_to, "--to") if t_to else hi
    if b <= a:
        raise ValueError(f"--to ({t_to}) must be after --from ({t_from})")
    return a, b


def _bin(lf: pl.LazyFrame, t0: int, width: int, aggs: list[pl.Expr]) -> pl.DataFrame:
    return (lf.with_columns(((pl.col("ts_ms") - t0) // width).alias("_b"))
              .group_by("_b").agg(aggs).sort("_b")
              .with_columns((pl.col("_b") * width + t0 + width // 2).alias("t"))
              .collect())


def load(data_dir, date: str, symbol: str, t_from: str | None = None, t_to: str | None = None,
         bins: int = 1500, include_quarantine: bool = False) -> dict[str, Any]:
    """The day's series, downsampled to ``bins`` buckets (each a list of plain values)."""
    a, b = _window(date, t_from, t_to)
    if t_from is None and t_to is None:   # the whole day: what is covered, to the minute
        span = read.scan("prices", data_dir=data_dir, symbols=[symbol], start=date, end=date,
                         include_quarantine=include_quarantine).select(
            pl.col("ts_ms").min().alias("a"), pl.col("ts_ms").max().alias("b")).collect()
        if span.height and span["a"][0] is not None:
            a = max(a, span["a"][0] // 60_000 * 60_000)
            b = min(b, (span["b"][0] // 60_000 + 1) * 60_000)
    width = max(1, (b - a) // bins)

    def scan(kind: str, cols: list[str], ts: str = "ts_ms") -> pl.LazyFrame:
        lf = read.scan(kind, data_dir=data_dir, symbols=[symbol], start=date, end=date,
                       include_quarantine=include_quarantine)
        return lf.select(cols).rename({ts: "ts_ms"} if ts != "ts_ms" else {}).filter(
            (pl.col("ts_ms") >= a) & (pl.col("ts_ms") < b))

    price = _bin(scan("prices", ["ts_ms", "price"]), a, width,
                 [pl.col("price").min().alias("lo"), pl.col("price").max().alias("hi"),
                  pl.col("price").last().alias("last"), pl.len().alias("n")])
    cvd = _bin(scan("cvd", ["ts_ms", "cvd", "z_cvd", "regime"]), a, width,
               [pl.col("cvd").last(), pl.col("z_cvd").min().alias("zlo"),
                pl.col("z_cvd").max().alias("zhi"), pl.col("regime").last()])
    ofi = _bin(scan("ofi", ["ts_ms", "ofi_z", "gap"]), a, width,
               [pl.col("ofi_z").min().alias("zlo"), pl.col("ofi_z").max().alias("zhi"),
                pl.col("gap").any().alias("gap")])
    fusion = _bin(scan("fusion", ["ts_ms", "score_z"]), a, width,
                  [pl.col("score_z").min().alias("zlo"), pl.col("score_z").max().alias("zhi")])
    events = scan("events", ["ts_ms", "event_type", "meta_json"]).collect()
    ops = scan("raw_ops", ["recv_ts_ms", "event_type"], ts="recv_ts_ms").filter(
        pl.col("event_type").is_in(["disconnect", "connect", "gap_detected"])).sort("ts_ms").collect()
    reconnects = []
    down = None
    for t, kind in ops.select("ts_ms", "event_type").iter_rows():
        if kind == "disconnect" and down is None:
            down = t
        elif kind == "connect" and down is not None:
            reconnects.append((down, max(t, down + width)))
            down = None
    return {"date": date, "symbol": symbol, "start_ms": a, "end_ms": b, "bin_ms": width,
            "price": price, "cvd": cvd, "ofi": ofi, "fusion": fusion,
            "events": events.filter(pl.col("meta_json").str.contains('"signal"')),
            "reconnects": reconnects,
            "trade_gaps": ops.filter(pl.col("event_type") == "gap_detected")["ts_ms"].to_list(),
            "book_gaps": ofi.filter(pl.col("gap"))["t"].to_list()}


def _times(ms) -> list:
    return [dt.datetime.fromtimestamp(x / 1000, tz=dt.timezone.utc) for x in ms]


def render(day: dict[str, Any], thresholds: dict[str, float], *, width_px: int = 1600,
           height_px: int = 1000, dpi: int = 100, palette: bool = False) -> bytes:
    """PNG bytes of the figure (``palette``: 64 colours, ~3× smaller, for embedding)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    small = width_px < 1000
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(4, 1, sharex=True, height_ratios=[3, 2, 3, 0.5])
    ax_p, ax_c, ax_z, ax_r = axes
    title = f"{day['symbol']} {day['date']} (UTC)"
    span_h = (day["end_ms"] - day["start_ms"]) / 3_600_000
    fig.suptitle(f"{title} — {span_h:.3g} h, {day['bin_ms'] / 1000:.3g} s per point",
                 fontsize=9 if small else 12)
    p = day["price"]
    if p.height:
        t = _times(p["t"])
        ax_p.fill_between(t, p["lo"], p["hi"], color="#1f77b4", alpha=0.3, lw=0, label="range")
        ax_p.plot(t, p["last"], color="#1f77b4", lw=0.8, label="last")
    ax_p.set_ylabel("price")
    ev = day["events"]
    if ev.height and p.height:
        lookup = p.select("t", "last").sort("t")
        evp = ev.sort("ts_ms").join_asof(lookup, left_on="ts_ms", right_on="t", strategy="nearest")
        for kind, (marker, color) in EVENT_MARKERS.items():
            sel = evp.filter(pl.col("event_type") == kind)
            if sel.height:
                ax_p.scatter(_times(sel["ts_ms"]), sel["last"], marker=marker, color=color,
                             s=18 if small else 36, zorder=5, label=f"{kind} ({sel.height})")
    c = day["cvd"]
    if c.height:
        ax_c.plot(_times(c["t"]), c["cvd"], color="#2ca02c", lw=0.9)
    ax_c.set_ylabel("CVD (base)")
    for frame, name, color in ((day["ofi"], "ofi_z", "#ff7f0e"), (c, "z_cvd", "#2ca02c"),
                               (day["fusion"], "score_z", "#9467bd")):
        if frame.height:   # per bucket the value farthest from 0: a spike past a threshold shows
            lo, hi = frame["zlo"].fill_null(0.0), frame["zhi"].fill_null(0.0)
            peak = pl.select(pl.when(hi.abs() >= lo.abs()).then(hi).otherwise(lo)).to_series()
            ax_z.plot(_times(frame["t"]), peak, color=color, lw=0.6, alpha=0.8, label=name)
    fz, ez = thresholds.get("fusion_threshold", 2.0), thresholds.get("extreme_threshold", 3.0)
    for y, style, label in ((fz, "--", f"fusion ±{fz:g}"), (ez, ":", f"extreme ±{ez:g}")):
        ax_z.axhline(y, color="k", ls=style, lw=0.8, label=label)
        ax_z.axhline(-y, color="k", ls=style, lw=0.8)
    ax_z.set_ylabel("z (robust)")
    if c.height:   # regime as a band: one coloured span per run of equal labels
        regimes = c.select("t", "regime").with_columns(
            (pl.col("regime") != pl.col("regime").shift()).fill_null(True).cum_sum().alias("run"))
        runs = regimes.group_by("run").agg(pl.col("regime").first(), pl.col("t").min().alias("a"),
                                           pl.col("t").max().alias("b")).sort("a")
        half = day["bin_ms"] / 2
        for label, a, b in runs.select("regime", "a", "b").iter_rows():
            t0, t1 = _times([a - half, b + half])
            ax_r.axvspan(t0, t1, color=REGIME_COLORS.get(label or "warmup", "#dddddd"), lw=0)
        ax_r.legend(handles=[Patch(color=v, label=k) for k, v in REGIME_COLORS.items()],
                    loc="upper left", ncol=5, fontsize=6 if small else 8, frameon=False,
                    bbox_to_anchor=(0, -0.6 if small else -0.9))
    ax_r.set_yticks([])
    ax_r.set_ylabel("regime", rotation=0, ha="right", va="center")
    shaded = False
    for a, b in day["reconnects"]:
        for ax in axes:
            ax.axvspan(*_times([a, b]), color="#999999", alpha=0.35, lw=0)
        shaded = True
    for g in day["trade_gaps"] + day["book_gaps"]:
        for ax in axes[:3]:
            ax.axvline(_times([g])[0], color="#d62728", lw=0.6, alpha=0.6)
        shaded = True
    if shaded:
        ax_p.plot([], [], color="#d62728", lw=0.6, label="gap")
        ax_p.fill_between([], [], color="#999999", alpha=0.35, label="reconnect")
    for ax in (ax_p, ax_z):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=6 if small else 8, ncol=4, frameon=False)
    for ax in axes:
        ax.grid(True, lw=0.3, alpha=0.5)
        if small:
            ax.tick_params(labelsize=7)
    ax_r.set_xlim(*_times([day["start_ms"], day["end_ms"]]))
    ax_r.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.timezone.utc))
    ax_r.set_xlabel("time (UTC)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if not palette:
        return buf.getvalue()
    from PIL import Image   # matplotlib's own dependency
    buf.seek(0)
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=64).save(out, format="PNG", optimize=True)
    return out.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown showing ``png`` inline (a data: URI: the Dagster UI renders it, docs/dagster.md)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def thresholds_of(settings) -> dict[str, float]:
    return {"fusion_threshold": settings.signals.fusion_threshold,
            "extreme_threshold": settings.signals.extreme_threshold}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", required=True, help="UTC date YYYY-MM-DD")
    p.add_argument("--symbol", required=True, help="symbol, e.g. BTCUSDT")
    p.add_argument("--from", dest="t_from", help="start time HH:MM UTC (default: the day's first trade)")
    p.add_argument("--to", dest="t_to", help="end time HH:MM UTC (default: the day's last trade)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--data-dir", help="data root (default: settings data_dir)")
    p.add_argument("--config", help="settings file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--include-quarantine", action="store_true", help="plot a quarantined partition")
    p.add_argument("--width", type=int, default=1600, help="pixels (default 1600)")
    p.add_argument("--height", type=int, default=1000, help="pixels (default 1000)")


def run(args: argparse.Namespace) -> int:
    from .settings import load_settings
    settings = load_settings(args.config)
    data_dir = args.data_dir or settings.data_dir
    if not layout.DATE_RE.match(args.date):
        print(f"ofi-cvd-harvest plot: bad --date {args.date!r} (YYYY-MM-DD)", file=sys.stderr)
        return 2
    if not (200 <= args.width <= 10_000 and 200 <= args.height <= 10_000):
        print("ofi-cvd-harvest plot: --width/--height must be 200..10000 pixels", file=sys.stderr)
        return 2
    try:
        day = load(data_dir, args.date, args.symbol.upper(), args.t_from, args.t_to,
                   bins=max(200, args.width - 100), include_quarantine=args.include_quarantine)
    except ValueError as exc:
        print(f"ofi-cvd-harvest plot: {exc}", file=sys.stderr)
        return 2
    if not day["price"].height:
        print(f"ofi-cvd-harvest plot: no published prices for {args.symbol} on {args.date} in "
              f"that window under {data_dir}", file=sys.stderr)
        return 1
    png = render(day, thresholds_of(settings), width_px=args.width, height_px=args.height)
    Path(args.out).write_bytes(png)
    print(f"wrote {args.out} ({len(png) / 1024:.0f} kB)")
    return 0
