"""The REST probe after a trade-feed reconnect (docs/capture.md, healing).

Split out of ``capture/runner.py``; it runs as a side task of the capture and feeds what it
finds through the same path as the healer (``Capture._on_rest_trade``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..exchange.rest import RestError
from ..monitoring import metrics
from ..protocol.decode import DecodeError
from ..protocol.tradegaps import DUPLICATE
from .symstate import now_ms as _now_ms


async def probe_after_reconnect(cap: Any, symbols: tuple[str, ...]) -> None:
    """A quiet symbol may not trade again for minutes after a reconnect, so the id jump
    that reveals trades missed during the outage would come late: ask REST for anything
    after the last id instead (what the stream then re-delivers is deduplicated)."""
    await asyncio.sleep(cap.probe_delay_sec)
    for sym in symbols:
        state = cap.states[sym]
        last = state.tracker.last_id
        if not state.after_reconnect or last is None:
            continue   # a live trade arrived: the tracker already saw any jump
        try:
            trades = await cap.rest.agg_trades(sym, from_id=last + 1, limit=1000)
        except (RestError, DecodeError, OSError) as exc:
            cap.log.warning("%s: reconnect probe failed: %s", sym, exc)
            continue
        recv_ms = _now_ms()
        new = 0
        for t in trades:
            if t.agg_trade_id in state.dedup:
                continue
            status, gap = state.tracker.observe(t.agg_trade_id, recv_ms)
            if status == DUPLICATE:
                continue
            if gap is not None:
                cap.healer.opened(sym, gap, "reconnect")
            cap._on_rest_trade(t, recv_ms)
            new += 1
        cap.healer.healed_rows[sym] = cap.healer.healed_rows.get(sym, 0) + new
        if new:
            metrics.healed_trades_total.labels(sym).inc(new)
        cap.ops.emit("reconnect_probe", {"from_id": last + 1, "rows": new}, symbol=sym)
