"""Signal-event statistics of derived partitions (the figures in docs/signals.md, "Events").

For every date × symbol with raw files under ``--data-dir`` (or the ones named), derives the
tables and reports, per symbol over the covered time (first to last trade):
* signal events per symbol-hour, in total and by type;
* the spacing between consecutive events of one type and direction (percentiles, seconds);
* how soon after its cool-down ended each event fired (gap − cool-down): the share within
  1 / 5 / 10 s. A large share means the cool-down, not the market, sets the rate.

    .venv/bin/python benchmarks/event_stats.py --data-dir DIR [--dates D1,D2] [--symbols A,B]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import orjson
import polars as pl

QS = (0.1, 0.5, 0.9)
SOON_SEC = (1, 5, 10)


def event_stats(events: pl.DataFrame, hours: float, cooldown_sec: float,
                divergence_cooldown_sec: float) -> dict:
    """Statistics of one symbol's ``events`` rows over ``hours`` of covered time."""
    metas = [orjson.loads(m) for m in events["meta_json"]]
    rows = [(ts, et, m.get("direction", "")) for ts, et, m in
            zip(events["ts_ms"], events["event_type"], metas) if m.get("category") == "signal"]
    by_type: dict[str, list[float]] = {}
    soon: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    last: dict[tuple, int] = {}
    for ts, et, d in sorted(rows):
        counts[et] = counts.get(et, 0) + 1
        key = (et, d)
        if key in last:
            gap = (ts - last[key]) / 1000.0
            cd = divergence_cooldown_sec if et.startswith("divergence") else cooldown_sec
            by_type.setdefault(et, []).append(gap)
            soon.setdefault(et, []).append(gap - cd)
        last[key] = ts
    out = {"hours": round(hours, 4), "events": len(rows),
           "per_hour": round(len(rows) / hours, 2) if hours else None,
           "per_hour_by_type": {k: round(v / hours, 2) for k, v in sorted(counts.items())},
           "spacing_sec": {}, "after_cooldown": {}}
    for et, gaps in sorted(by_type.items()):
        g = np.array(gaps)
        out["spacing_sec"][et] = {"n": len(g), "min": round(float(g.min()), 1),
                                  **{f"p{int(q * 100)}": round(float(np.quantile(g, q)), 1) for q in QS},
                                  "max": round(float(g.max()), 1)}
        s = np.array(soon[et])
        out["after_cooldown"][et] = {f"within_{x}s": round(float((s < x).mean()), 3) for x in SOON_SEC}
    all_soon = np.concatenate([np.array(v) for v in soon.values()]) if soon else np.zeros(0)
    out["after_cooldown"]["all"] = {f"within_{x}s": round(float((all_soon < x).mean()), 3)
                                    for x in SOON_SEC} if len(all_soon) else None
    return out


def partition_stats(storage, settings, dates: list[str], symbol: str) -> dict:
    from ofi_cvd_harvest.signals.derive import derive_all

    prices, events = [], []
    for date in dates:
        t = derive_all(storage, settings, date, symbol)
        prices.append(t["prices"].select("event_ts_ms"))
        events.append(t["events"])
    ts = pl.concat(prices)["event_ts_ms"]
    hours = (ts.max() - ts.min()) / 3_600_000 if len(ts) else 0.0
    sig = settings.signals
    return event_stats(pl.concat(events), hours, sig.cooldown_sec, sig.divergence_cooldown_sec)


def main() -> int:
    from ofi_cvd_harvest.settings import load_settings
    from ofi_cvd_harvest.storage.fs import Storage

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dates", default=None)
    ap.add_argument("--symbols", default=None)
    args = ap.parse_args()
    st = Storage(args.data_dir)
    settings = load_settings(env={})
    files = st.list_files("raw")
    found: dict[str, set[str]] = {}
    for f in files:
        if "/stream=agg_trade/" in f:
            date = f.split("date=")[1][:10]
            sym = f.split("symbol=")[1].split("/")[0]
            found.setdefault(sym, set()).add(date)
    symbols = args.symbols.split(",") if args.symbols else sorted(found)
    out = {}
    for sym in symbols:
        dates = args.dates.split(",") if args.dates else sorted(found.get(sym, ()))
        out[sym] = partition_stats(st, settings, dates, sym)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
