"""The gauge tick with quiet symbols staged (``monitoring.live_quiet_rows``): it runs every
staged trade, in slices with the event loop's other work in between, and leaves the same
statistics, events and z as the per-row path."""

from __future__ import annotations

import asyncio

from ofi_cvd_harvest.monitoring.live_cvd import LiveCvd
from ofi_cvd_harvest.settings import Settings

from .test_live_cvd import synthetic_trades
from .test_live_cvd_chunked import assert_same_outputs, outputs


def test_the_default_stages_quiet_symbols():
    assert Settings().live_quiet_rows == 16
    assert LiveCvd(Settings()).quiet_rows == 16
    assert LiveCvd(Settings(), quiet_rows=1).quiet_rows == 1


def test_the_tick_runs_all_staged_trades_in_slices_and_equals_the_per_row_path():
    s = Settings()
    now = [0.0]
    ref = LiveCvd(s, quiet_rows=1, recompute_sec=0)
    live = LiveCvd(s, quiet_rows=16, clock=lambda: now[0], recompute_sec=10)
    syms = [f"Q{i:03d}USDT" for i in range(200)]
    for k, sym in enumerate(syms):                 # 5..19 trades each: most stay staged
        ts, qty, ibm = synthetic_trades(1, 5 + k % 15, seed=100 + k)
        for a, b, c in zip(ts.tolist(), qty.tolist(), ibm.tolist()):
            live.add(sym, a, b, c, 100.0 + k)
            ref.add("R" + sym, a, b, c, 100.0 + k)
    staged = sum(len(live._syms[x].bp) for x in syms)
    assert staged > 1500                           # the tick has real work to slice

    async def tick_beside_a_reader() -> int:
        turns = 0
        done = False

        async def reader():                        # stands for the frames the loop reads
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        now[0] = 10.0
        turns = 0
        await live.tick()
        done = True
        await task
        return turns

    turns = asyncio.run(tick_beside_a_reader())
    assert turns >= staged // 256 - 1 >= 4         # the loop ran between the slices
    assert not any(live._syms[x].bp for x in syms)
    for sym in syms[::8]:                          # (each comparison reads the registry)
        assert_same_outputs(outputs(ref, "R" + sym), outputs(live, sym))
