"""Ground-truth dump: the vectorised table equals the per-trade records and REST, and the
Parquet file is written atomically."""

from __future__ import annotations

import time

import pyarrow.parquet as pq

from ofi_cvd_harvest.sim.dump import SCHEMA, dump_trades, ground_truth_table
from ofi_cvd_harvest.sim.server import SimulatorThread


def test_table_matches_records_and_rest(tmp_path):
    st = SimulatorThread(["BTCUSDT", "QQQUSDT"], seed=5, speed=40)
    with st:
        time.sleep(1.0)
        rest = st.call(st.sim.source.agg_trades, "BTCUSDT", None, None, None, 1000)
    sim = st.sim                                   # stopped: the ground truth no longer moves
    table = ground_truth_table(sim)
    assert table.schema == SCHEMA
    for sym in ("BTCUSDT", "QQQUSDT"):
        rows = [r for r in table.to_pylist() if r["symbol"] == sym]
        assert rows == sim.ground_truth(sym)
        assert rows
    btc = {r["agg_trade_id"]: r for r in table.to_pylist() if r["symbol"] == "BTCUSDT"}
    for t in rest:
        r = btc[t["a"]]
        assert (r["price"], r["qty"], r["trade_ts_ms"], r["is_buyer_maker"]) == (
            float(t["p"]), float(t["q"]), t["T"], t["m"])
    path = tmp_path / "truth.parquet"
    assert dump_trades(sim, str(path)) == table.num_rows
    assert pq.read_table(path).equals(table)
    assert not list(tmp_path.glob("*.tmp"))
