"""The healing debt (capture/owed.py): coalesced announcements, oldest-first fair order,
figures. Sans-I/O: trackers and the debt only."""

from __future__ import annotations

from ofi_cvd_harvest.capture.owed import Debt
from ofi_cvd_harvest.protocol.tradegaps import TradeIdTracker


def _debt(*syms: str) -> tuple[Debt, dict[str, TradeIdTracker]]:
    trackers = {s: TradeIdTracker() for s in syms}
    return Debt(trackers), trackers


def _jump(debt: Debt, t: TradeIdTracker, sym: str, to: int, now: int, reason="reconnect"):
    _, gap = t.observe(to, now)
    if gap is not None:
        debt.opened(sym, gap.start, gap.end, gap.opened_ms, reason)


def test_many_gaps_of_a_symbol_are_announced_in_one_row_after_the_grace():
    debt, tr = _debt("A", "B")
    tr["A"].observe(0, 0)
    tr["B"].observe(0, 0)
    for k in range(1, 1001):                   # 1,000 reconnect gaps of A, one of B
        _jump(debt, tr["A"], "A", 10 * k, now=k)
    _jump(debt, tr["B"], "B", 50, now=5, reason="id_jump")
    tr["A"].fill(15)                           # a late delivery (another connection)
    for i in range(21, 30):
        tr["A"].fill(i)                        # gap 21..29 closed entirely within the grace
    assert list(debt.announcements(now_ms=500, grace_ms=1000)) == []     # nothing due yet
    out = dict(debt.announcements(now_ms=1500, grace_ms=1000))
    assert set(out) == {"A", "B"}
    a = out["A"]
    assert (a.gaps, a.late) == (500 - 1, 1) and a.first == 1 and a.last == 4999
    assert a.missing == 499 * 9 - 1 and a.reasons == {"reconnect": 499}
    assert (out["B"].gaps, out["B"].missing, out["B"].reasons) == (1, 49, {"id_jump": 1})
    rest = dict(debt.announcements(now_ms=10_000, grace_ms=1000))
    assert rest["A"].gaps == 500 and debt.pending_new() == 0
    assert list(debt.announcements(now_ms=20_000, grace_ms=1000)) == []   # once each


def test_schedule_serves_the_oldest_debt_first_and_every_symbol_once():
    debt, tr = _debt("A", "B", "C", "D")
    for s in tr:
        tr[s].observe(0, 0)
    _jump(debt, tr["B"], "B", 100, now=10)
    _jump(debt, tr["A"], "A", 100, now=30)
    _jump(debt, tr["C"], "C", 5000, now=20)    # a big debt is not served before older ones
    _jump(debt, tr["D"], "D", 100, now=2000)   # still in its grace
    assert debt.schedule(now_ms=1500, grace_ms=1000) == ["B", "C", "A"]
    assert debt.schedule(now_ms=1500, grace_ms=1000, force=True) == ["B", "C", "A", "D"]
    assert debt.first_due("C", 500) == (1, 4999) and debt.first_due("D", 500) is None


def test_figures_count_pages_that_fill_every_small_hole_they_span():
    debt, tr = _debt("A", "B")
    t = tr["A"]
    t.observe(0, 0)
    for k in range(1, 101):                    # 100 one-id holes within 1,000 ids: one page
        t.observe(2 * k, 0)
    tr["B"].observe(0, 0)
    tr["B"].observe(2501, 0)                   # 2,500 consecutive ids: three pages
    per, requests, eta = debt.figures(budget_weight_per_min=1920)
    assert per == {"A": 100, "B": 2500} and requests == 4
    assert eta == 4 * 20 * 60 / 1920           # seconds at the budget (weight 20 a page)
