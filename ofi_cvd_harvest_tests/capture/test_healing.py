"""capture/healing.py on its own, against real REST on loopback (the scripted exchange): what is
owed is fetched once and only once, late deliveries cost no request, a failing REST is backed off
and reported unhealed once while the debt is kept, and ids the exchange never had are recorded,
not owed for ever."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest

from ofi_cvd_harvest.capture.buffers import RawBuffers
from ofi_cvd_harvest.capture.healing import Healer
from ofi_cvd_harvest.capture.ops import OpsRecorder
from ofi_cvd_harvest.exchange.rest import RestClient
from ofi_cvd_harvest.protocol.tradegaps import TradeIdTracker

from .miniexchange import MiniExchange

SYM = "BTCUSDT"


@pytest.fixture(scope="module")
def ex():
    """A market with history: its ids are the ground truth every test here heals against."""
    with MiniExchange([SYM], seed=8, speed=20) as x:
        deadline = time.monotonic() + 20
        while len(x.ground_truth_ids(SYM)) < 120 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield x


class Rig:
    """A healer over one symbol's tracker, its REST rows and ops rows collected."""

    def __init__(self, ex: MiniExchange, **healer_kw):
        self.buffers = RawBuffers()
        self.ops = OpsRecorder(self.buffers, (SYM,), logging.getLogger("test_healing"))
        self.tracker = TradeIdTracker()
        self.healed: list[int] = []
        rest = RestClient(ex.rest_url, max_attempts=1)
        self.healer = Healer(rest, {SYM: self.tracker},
                             lambda t, recv_ms: self.healed.append(t.agg_trade_id),
                             self.ops, logging.getLogger("test_healing"), **healer_kw)

    def see(self, ids) -> None:
        """The live stream delivers ``ids``; a jump opens a gap as the runner does."""
        for i in ids:
            _, gap = self.tracker.observe(i, int(time.time() * 1000))
            if gap is not None:
                self.healer.opened(SYM, gap, "id_jump")

    def heal(self, **kw) -> None:
        asyncio.run(self.healer.heal_due(**kw))

    def events(self) -> list[tuple[str, dict]]:
        return [(r["event_type"], orjson.loads(r["meta_json"]))
                for b in self.buffers.drain() for r in b.table.to_pylist()]


def test_a_gap_is_fetched_once_and_only_the_owed_ids(ex):
    truth = ex.ground_truth_ids(SYM)[:100]
    rig = Rig(ex)
    rig.see(truth[:10] + truth[30:60])          # 20 ids lost; the market has many more after
    assert rig.healer.owed(SYM) == 20 and rig.healer.busy
    calls = len(ex.rest_calls)
    rig.heal(force=True)
    assert rig.healed == truth[10:30]            # exactly the owed ids: none past the stream's
    assert rig.healer.owed() == 0 and not rig.healer.busy
    assert rig.healer.gaps_detected[SYM] == rig.healer.gaps_healed[SYM] == 1
    kinds = dict(rig.events())
    assert kinds["gap_detected"]["missing"] == 20 and kinds["gap_detected"]["reason"] == "id_jump"
    assert kinds["gap_healed"]["rest_rows"] == 20 and kinds["gap_healed"]["owed_left"] == 0
    assert ex.rest_calls[calls:] == [str(truth[10])]
    rig.heal(force=True)                         # nothing owed: no request
    assert len(ex.rest_calls) == calls + 1 and rig.healed == truth[10:30]


def test_a_late_delivery_within_the_grace_costs_no_request(ex):
    truth = ex.ground_truth_ids(SYM)[:50]
    rig = Rig(ex, grace_ms=60_000)
    rig.see(truth[:10] + truth[15:30])
    rig.see(truth[10:15])                        # reordered frames arrive within the grace
    calls = len(ex.rest_calls)
    rig.heal(now_ms=int(time.time() * 1000) + 61_000)
    assert len(ex.rest_calls) == calls and rig.healed == []
    assert rig.healer.out_of_order[SYM] == 1 and SYM not in rig.healer.gaps_detected
    assert rig.events() == []


def test_before_the_grace_nothing_is_asked(ex):
    truth = ex.ground_truth_ids(SYM)[:50]
    rig = Rig(ex, grace_ms=60_000)
    rig.see(truth[:10] + truth[20:30])
    calls = len(ex.rest_calls)
    rig.heal()                                   # not forced, within the grace
    assert len(ex.rest_calls) == calls and rig.healer.owed(SYM) == 10 and rig.events() == []


def test_failing_rest_keeps_the_debt_reports_it_once_and_heals_later(ex):
    truth = ex.ground_truth_ids(SYM)[:80]
    rig = Rig(ex, max_attempts=2, slow_retry_ms=1)
    rig.see(truth[:5] + truth[40:80])
    ex.rest_fail_status = 400
    try:
        for _ in range(4):
            rig.heal(force=True)                 # forced passes ignore the back-off
    finally:
        ex.rest_fail_status = None
    assert rig.healer.owed(SYM) == 35 and rig.healed == []
    assert rig.tracker.snapshot() == [[truth[5], truth[39]]]     # kept for the checkpoint
    unhealed = [m for k, m in rig.events() if k == "gap_unhealed"]
    assert len(unhealed) == 1 and unhealed[0]["missing"] == 35
    assert unhealed[0]["start"] == truth[5] and "400" in unhealed[0]["error"]
    rig.heal(force=True)                         # REST is back
    assert rig.healed == truth[5:40] and rig.healer.owed() == 0
    assert [k for k, _ in rig.events()] == ["gap_healed"]


def test_a_failure_backs_off_an_unforced_pass(ex):
    truth = ex.ground_truth_ids(SYM)[:40]
    rig = Rig(ex, grace_ms=0)
    rig.see(truth[:5] + truth[20:40])
    ex.rest_fail_status = 500
    try:
        calls = len(ex.rest_calls)
        rig.heal()
        assert len(ex.rest_calls) == calls + 1
        rig.heal()                               # within the 1 s back-off: no request
        assert len(ex.rest_calls) == calls + 1
    finally:
        ex.rest_fail_status = None
    assert rig.healer.owed(SYM) == 15


def test_ids_the_exchange_never_had_are_recorded_not_owed(ex):
    """A checkpoint from another id sequence owes ids below the exchange's first trade:
    ``fromId`` answers from the first id that exists, so those ids are settled as absent."""
    truth = ex.ground_truth_ids(SYM)
    first = truth[0]
    rig = Rig(ex)
    rig.tracker.restore(truth[9], [[first - 50, first + 4]])
    rig.healer.restore(SYM, [[first - 50, first + 4]])
    rig.heal(force=True)
    assert rig.healed == truth[:5] and rig.healer.owed() == 0
    events = dict(rig.events())
    assert events["gap_ids_absent"] == {"start": first - 50, "end": first - 1, "ids": 50}
    assert events["gap_detected"]["reason"] == "checkpoint"


def _gauge(name: str) -> float:
    from ofi_cvd_harvest.monitoring import metrics
    return metrics.REGISTRY.get_sample_value(name, {"symbol": SYM})


def test_the_owed_gauges_follow_the_debt_each_time_it_changes(ex):
    """The gauges are set only when a symbol's figures change (healing.update_gauges): they
    must still show every change -- a gap opened, healed, opened again -- and a fresh healer
    must set them although the process's gauges still hold a previous healer's values."""
    truth = ex.ground_truth_ids(SYM)[:100]
    rig = Rig(ex)
    rig.healer.update_gauges()
    assert _gauge("heal_owed_trades") == 0 and _gauge("trade_gaps_open") == 0
    rig.see(truth[:10] + truth[30:40] + truth[45:50])        # two gaps, 25 ids owed
    rig.healer.update_gauges()
    assert _gauge("heal_owed_trades") == 25 and _gauge("trade_gaps_open") == 2
    rig.heal(force=True)
    rig.healer.update_gauges()
    assert _gauge("heal_owed_trades") == 0 and _gauge("trade_gaps_open") == 0
    rig.see(truth[60:70])                                      # 10 more owed
    rig.healer.update_gauges()
    assert _gauge("heal_owed_trades") == 10 and _gauge("trade_gaps_open") == 1
    other = Rig(ex)                                            # owes nothing: says so at once
    other.healer.update_gauges()
    assert _gauge("heal_owed_trades") == 0 and _gauge("trade_gaps_open") == 0
