"""A full simulated day (2 M trades, 864 k book rows, 1440 rotated raw files per stream) is
evaluated by streaming SQL: bounded time and memory (slow; run with ``-m slow``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest.schemas import DERIVED_SCHEMAS, RAW_SCHEMAS
from ofi_cvd_harvest.storage import layout

DATE, SYM = "2024-07-19", "BTCUSDT"


def write_day(root, n=2_000_000, m=864_000, files=1440):
    rng = np.random.default_rng(0)
    d0, _ = layout.day_bounds_ms(DATE)
    t = d0 + np.sort(rng.integers(0, 86_400_000, n))
    ids = np.arange(n, dtype=np.int64) + 10**9
    lat = rng.integers(5, 80, n)
    trades = pa.table(dict(
        recv_ts_ms=t + 3 + lat, event_ts_ms=t + 3, trade_ts_ms=t, symbol=[SYM] * n, agg_trade_id=ids,
        price=rng.normal(6e4, 10, n), qty=rng.pareto(1.2, n) * 0.01, first_trade_id=ids,
        last_trade_id=ids, is_buyer_maker=rng.random(n) < .5, source=["ws"] * n,
        conn_id=np.ones(n, dtype=np.int64))).cast(RAW_SCHEMAS["agg_trade"])
    for i, part in enumerate(np.array_split(np.arange(n), files)):
        p = root / layout.raw_file(DATE, SYM, "agg_trade", d0 + i * 60_000, i)
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(trades.slice(part[0], len(part)), p)
    prices = pa.table(dict(
        ts_ms=trades["recv_ts_ms"], event_ts_ms=trades["event_ts_ms"], symbol=trades["symbol"],
        price=trades["price"], qty=trades["qty"], agg_trade_id=ids, latency_ms=lat,
        recv_rate_tps=np.ones(n), trade_ts_ms=t, is_buyer_maker=trades["is_buyer_maker"],
        source=trades["source"])).cast(DERIVED_SCHEMAS["prices"])
    z = rng.standard_t(2, n)
    cvd = pa.table(dict(
        ts_ms=trades["event_ts_ms"], symbol=trades["symbol"], cvd=np.zeros(n), delta=np.zeros(n),
        z_raw=z, z_cvd=np.clip(z, -8, 8), scale=np.ones(n), sigma_floor=np.ones(n),
        floor_used=rng.random(n) < .3, regime=["A_H"] * n, agg_trade_id=ids)).cast(DERIVED_SCHEMAS["cvd"])
    for kind, tab in (("prices", prices), ("cvd", cvd)):
        p = root / layout.derived_file(DATE, SYM, kind)
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tab, p)
    bt = d0 + np.arange(m, dtype=np.int64) * 100
    mid = 6e4 + np.cumsum(rng.normal(0, .1, m))
    off = pa.array(np.arange(0, m * 10 + 1, 10, dtype=np.int32))
    lv = 0.1 * (1 + np.arange(10))
    q = pa.ListArray.from_arrays(off, rng.random(m * 10))
    u = np.arange(m, dtype=np.int64) * 5 + 10**10
    book = pa.table(dict(
        recv_ts_ms=bt + 20, event_ts_ms=bt, transact_ts_ms=bt, symbol=[SYM] * m, first_update_id=u - 2,
        final_update_id=u, prev_final_update_id=np.concatenate([[u[0] - 5], u[:-1]]),
        bid_px=pa.ListArray.from_arrays(off, (mid[:, None] - lv).ravel()), bid_qty=q,
        ask_px=pa.ListArray.from_arrays(off, (mid[:, None] + lv).ravel()), ask_qty=q,
        gap=np.zeros(m, dtype=bool), conn_id=np.ones(m, dtype=np.int64))).cast(RAW_SCHEMAS["book"])
    for i, part in enumerate(np.array_split(np.arange(m), files)):
        p = root / layout.raw_file(DATE, SYM, "book", d0 + i * 60_000, i)
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(book.slice(part[0], len(part)), p)


@pytest.mark.slow
def test_full_day_is_evaluated_in_bounded_time_and_memory(tmp_path):
    write_day(tmp_path)
    code = textwrap.dedent(f"""
        import json, resource, time
        from ofi_cvd_harvest.dq import partition_metrics
        from ofi_cvd_harvest.settings import load_settings
        t = time.time()
        res = partition_metrics({str(tmp_path)!r}, load_settings(env={{}}), {DATE!r}, {SYM!r})
        print(json.dumps({{"seconds": time.time() - t,
                           "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                           "values": {{r.name: r.value for r in res}}}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    v = doc["values"]
    assert v["prices_duplicates"] == 0 and v["missing_trades"] == 0 and v["crossed_book_rows"] == 0
    assert v["monotonic_prices"] == 0 and v["book_pu_gaps"] == 0
    assert doc["seconds"] < 120 and doc["rss_mb"] < 1200, doc
    print(f"full day: {doc['seconds']:.1f} s, peak RSS {doc['rss_mb']:.0f} MB")
