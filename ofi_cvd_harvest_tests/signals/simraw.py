"""Raw partitions straight from the simulator's market model, without the network.

The seeded :class:`~ofi_cvd_harvest.sim.market.SyntheticMarket` (the market the embedded
exchange serves) is polled over simulated time and its ``aggTrade`` and ``depth10@100ms``
messages become raw ``agg_trade`` / ``book`` rows as the capture would write them (receipt
time = E + a fixed 20 ms). Minutes of market in seconds, so event-rate properties can be tested
in the default suite; the slow test does the same through a real capture. Test-only code.
"""

from __future__ import annotations

import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.sim.market import StudyMode, SyntheticMarket
from ofi_cvd_harvest.sim.source import payload

LATENCY_MS = 20
STEP_MS = 20_000        # one poll per 20 s of simulated time (within the market's poll budget)


def simulate(symbols: tuple[str, ...], start_ms: int, minutes: float, seed: int = 7,
             study: StudyMode | None = None) -> dict[str, tuple[pa.Table, pa.Table]]:
    """``{symbol: (agg_trade table, book table)}`` for [start_ms, start_ms + minutes);
    ``study`` selects a planted-signal or null market (docs/research.md)."""
    market = SyntheticMarket(symbols, seed=seed, start_ms=start_ms, study=study)
    streams = frozenset([f"{s.lower()}@aggTrade" for s in symbols]
                        + [f"{s.lower()}@depth10@100ms" for s in symbols])
    trades: dict[str, list[dict]] = {s: [] for s in symbols}
    books: dict[str, list[dict]] = {s: [] for s in symbols}
    end = start_ms + int(minutes * 60_000)
    now = start_ms
    while now < end:
        now = min(now + STEP_MS, end)
        for m in market.poll(now, streams):
            d = payload(m)
            sym = d["s"]
            if m.stream.endswith("@aggTrade"):
                trades[sym].append({
                    "recv_ts_ms": d["E"] + LATENCY_MS, "event_ts_ms": d["E"], "trade_ts_ms": d["T"],
                    "symbol": sym, "agg_trade_id": d["a"], "price": float(d["p"]), "qty": float(d["q"]),
                    "first_trade_id": d["f"], "last_trade_id": d["l"], "is_buyer_maker": d["m"],
                    "source": "ws", "conn_id": 1})
            else:
                books[sym].append({
                    "recv_ts_ms": d["E"] + LATENCY_MS, "event_ts_ms": d["E"], "transact_ts_ms": d["T"],
                    "symbol": sym, "first_update_id": d["U"], "final_update_id": d["u"],
                    "prev_final_update_id": d["pu"],
                    "bid_px": [float(p) for p, _ in d["b"]], "bid_qty": [float(q) for _, q in d["b"]],
                    "ask_px": [float(p) for p, _ in d["a"]], "ask_qty": [float(q) for _, q in d["a"]],
                    "gap": not books[sym], "conn_id": 1})
    return {s: (pa.Table.from_pylist(trades[s], schema=schemas.AGG_TRADE),
                pa.Table.from_pylist(books[s], schema=schemas.BOOK)) for s in symbols}
