"""Reading back what a capture wrote, and the invariants every capture test asserts."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import polars as pl

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.settings import load_settings


def capture_settings(tmp_path: Path, ws_url: str, rest_url: str, **over):
    base = dict(symbols=("BTCUSDT", "ETHUSDT"), ws_base_url=ws_url, rest_base_url=rest_url,
                data_dir=tmp_path / "data", artifacts_dir=tmp_path / "artifacts",
                prometheus_port=0, parquet_rotate_sec=2.0, reconnect_base_sec=0.1,
                reconnect_max_sec=1.0)
    base.update(over)
    return load_settings(env={}, **base)


def truth_ids(sim, symbol: str) -> list[int]:
    """Every ``agg_trade_id`` the simulator ``sim`` traded for ``symbol`` so far, in order."""
    return [int(r["agg_trade_id"]) for r in sim.ground_truth(symbol)]


def files(data_dir: Path, stream: str, symbol: str | None = None) -> list[Path]:
    sym = f"symbol={symbol}" if symbol else "symbol=*"
    return sorted(Path(data_dir).glob(f"raw/date=*/{sym}/stream={stream}/*.parquet"))


def read(data_dir: Path, stream: str, symbol: str | None = None) -> pl.DataFrame:
    fs = files(data_dir, stream, symbol)
    if not fs:
        return pl.DataFrame(schema=pl.from_arrow(schemas.RAW_SCHEMAS[stream].empty_table()).schema)
    for f in fs:  # every file has exactly the schema of schemas.py (docs/reading.md)
        assert pq.read_schema(f).remove_metadata() == schemas.RAW_SCHEMAS[stream], f
    return pl.concat([pl.read_parquet(f) for f in fs])


def no_temp_files(root: Path) -> None:
    bad = [p for p in Path(root).rglob("*") if p.is_file() and not p.name.endswith(".parquet")]
    assert not bad, f"non-final files visible: {bad[:5]}"


def assert_trades_complete(df: pl.DataFrame, truth_ids: list[int]) -> tuple[int, int]:
    """No duplicates, and every ground-truth id between the first and last captured id."""
    ids = df["agg_trade_id"].to_list()
    assert len(ids) == len(set(ids)), "duplicate agg_trade_id in raw files"
    lo, hi = min(ids), max(ids)
    want = [i for i in truth_ids if lo <= i <= hi]
    missing = sorted(set(want) - set(ids))
    assert not missing, f"{len(missing)} ids missing, e.g. {missing[:10]}"
    assert set(ids) <= set(truth_ids), "captured ids the exchange never generated"
    return lo, hi


def assert_book_chain(book: pl.DataFrame) -> int:
    """Rows with gap=False continue the pu chain of the previous row; returns gap rows."""
    gaps = 0
    for sym in book["symbol"].unique().to_list():
        b = book.filter(pl.col("symbol") == sym).sort("final_update_id")
        prev_u = None
        for u, pu, gap in zip(b["final_update_id"], b["prev_final_update_id"], b["gap"]):
            if gap:
                gaps += 1
            else:
                assert prev_u is not None and pu == prev_u, (sym, u, pu, prev_u)
            prev_u = u
        assert b["event_ts_ms"].is_sorted(), sym
    return gaps
