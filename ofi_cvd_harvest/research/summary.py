"""The study as Markdown (asset metadata and ``ofi-cvd-harvest study``): IC by horizon with
its 95 % interval, event returns by type, and the null forward-return counts."""

from __future__ import annotations

import polars as pl

from .study import ALL, HORIZONS_SEC, IC_SIGNALS


def _num(v: float | None, fmt: str = "{:+.3f}") -> str:
    return "–" if v is None else fmt.format(v)


def _get(df: pl.DataFrame, **eq) -> dict | None:
    sel = df
    for k, v in eq.items():
        sel = sel.filter(pl.col(k) == v) if v is not None else sel.filter(pl.col(k).is_null())
    return sel.row(0, named=True) if len(sel) else None


def ic_table(df: pl.DataFrame, regime: str = ALL) -> list[str]:
    head = "| signal | " + " | ".join(f"IC {h} s [95 % CI]" for h in HORIZONS_SEC) + " |"
    lines = [head, "|---" * (len(HORIZONS_SEC) + 1) + "|"]
    for col, _ in IC_SIGNALS:
        cells = []
        for h in HORIZONS_SEC:
            r = _get(df, measure="ic", signal=col, regime=regime, horizon_sec=h)
            if r is None or r["value"] is None:
                cells.append("–")
            elif r["ci_low"] is None:
                cells.append(f"{r['value']:+.3f} (no interval, n={r['n']})")
            else:
                cells.append(f"{r['value']:+.3f} [{_num(r['ci_low'])}, {_num(r['ci_high'])}] "
                             f"t={_num(r['t_stat'], '{:.1f}')}")
        lines.append(f"| {col} | " + " | ".join(cells) + " |")
    return lines


def event_table(df: pl.DataFrame) -> list[str]:
    head = "| event | dir | n | " + " | ".join(f"{h} s mean bps (hit)" for h in HORIZONS_SEC) + " |"
    lines = [head, "|---" * (len(HORIZONS_SEC) + 3) + "|"]
    counts = df.filter((pl.col("measure") == "event_count") & (pl.col("regime") == ALL))
    for sig, direction, n in counts.select("signal", "direction", "n").iter_rows():
        cells = []
        for h in HORIZONS_SEC:
            m = _get(df, measure="event_mean_bps", signal=sig, direction=direction, regime=ALL,
                     horizon_sec=h)
            hit = _get(df, measure="hit_rate", signal=sig, direction=direction, regime=ALL,
                       horizon_sec=h)
            cells.append("–" if m is None or m["value"] is None else
                         f"{m['value']:+.2f} t={_num(m['t_stat'], '{:.1f}')} "
                         f"({_num(hit and hit['value'], '{:.0%}')})")
        lines.append(f"| {sig} | {direction} | {n} | " + " | ".join(cells) + " |")
    return lines


def null_line(df: pl.DataFrame) -> str:
    parts = []
    for h in HORIZONS_SEC:
        r = _get(df, measure="null_forward_returns", signal="grid", horizon_sec=h)
        pm = _get(df, measure="null_past_midnight", signal="grid", horizon_sec=h)
        if r is not None:
            parts.append(f"{h} s: {int(r['value'])}/{r['n']} ({int(pm['value']) if pm else 0} past midnight)")
    return "Null forward returns on the 1-s grid — " + "; ".join(parts) if parts else "No trades."


def markdown(df: pl.DataFrame, title: str) -> str:
    """The summary of one study table (daily or aggregated)."""
    lines = [f"### {title}", "", "Spearman IC of each z (as of each second) with the forward "
             "trade-price return; 95 % intervals and t are Newey–West (Bartlett, bandwidth 3h) "
             "with fixed-b critical values (docs/research.md).", ""]
    lines += ic_table(df)
    lines += ["", "Event returns (bps; `both` = signed by the event's direction; hit = share "
              "moving the event's way, ties ½):", ""]
    lines += event_table(df)
    lines += ["", null_line(df)]
    return "\n".join(lines)
