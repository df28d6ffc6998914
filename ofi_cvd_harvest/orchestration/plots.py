"""The small day plot each derived materialisation carries (``plot`` metadata), so the Dagster
UI shows the partition at a glance: markdown with the PNG embedded as a data: URI, which the
Dagster 1.13 UI renders inline in the asset's materialisation metadata (docs/dagster.md).

Drawn from the *published* tables right after the gate published them (ofi_cvd_harvest/plot.py);
~45 kB per plot (64-colour PNG). A plot must never fail a derivation: any error is a warning.
"""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

WIDTH_PX, HEIGHT_PX, DPI, BINS = 720, 450, 80, 300


def plot_metadata(settings, date: str, symbol: str, log) -> dict[str, Any]:
    """``{"plot": MetadataValue.md(…)}`` for the partition, or ``{}`` when it cannot be drawn."""
    try:
        from .. import plot
        t0 = time.perf_counter()
        day = plot.load(settings.data_dir, date, symbol, bins=BINS)
        if not day["price"].height:
            return {}
        png = plot.render(day, plot.thresholds_of(settings), width_px=WIDTH_PX,
                          height_px=HEIGHT_PX, dpi=DPI, palette=True)
        log.info(f"{date}|{symbol}: plot {len(png) / 1024:.0f} kB in {time.perf_counter() - t0:.1f} s")
        return {"plot": dg.MetadataValue.md(plot.markdown_image(png, f"{symbol} {date}"))}
    except Exception as exc:   # a picture is not worth a failed step
        log.warning(f"{date}|{symbol}: no plot ({type(exc).__name__}: {exc})")
        return {}
