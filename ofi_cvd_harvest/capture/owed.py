"""The healing debt across symbols: what is owed, what to announce, whom to serve next
(docs/capture.md "Healing at scale").

The owed ids themselves live in each symbol's :class:`~ofi_cvd_harvest.protocol.tradegaps.TradeIdTracker`
(one :class:`~ofi_cvd_harvest.protocol.idranges.IdRanges`, the single truth). This module adds:

- **coalesced announcements**: gaps opened since the last healing pass are collected per symbol
  and, once their grace for late deliveries has passed, announced as one summary per symbol
  (not one ops row per reconnect and symbol: a storm opens tens of thousands);
- **a fair schedule** under the REST budget: every pass serves each symbol owing due ids one
  page, the symbol with the oldest debt first (round robin, oldest first), so one symbol's
  backlog cannot starve the others;
- **the debt in figures**: owed trades per symbol, requests needed to pay everything (pages of
  1,000 ids, each filling every small hole it spans) and the time that takes at the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..protocol.tradegaps import TradeIdTracker
from ..protocol.vocabulary import AGG_TRADES_PATH, request_weight

PAGE = 1000              # ids per REST aggTrades request (the exchange's maximum)
AGG_TRADES_WEIGHT = request_weight(AGG_TRADES_PATH)   # weight of one aggTrades request
_SCAN = 64               # intervals looked at for a due one (the lowest ids are the oldest)


@dataclass
class Announcement:
    """New gaps of one symbol whose grace has passed, in one ops row."""
    gaps: int = 0             # still (partly) missing after the grace
    late: int = 0             # filled by late (out-of-order) deliveries within the grace
    missing: int = 0          # ids of the announced gaps still missing
    first: int | None = None
    last: int | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def meta(self) -> dict:
        return {"gaps": self.gaps, "missing": self.missing, "start": self.first,
                "end": self.last, "reason": main_reason(self.reasons),
                "reasons": dict(self.reasons), "late_filled": self.late}


def main_reason(reasons: dict[str, int]) -> str | None:
    return max(reasons, key=lambda r: (reasons[r], r)) if reasons else None


class Debt:
    def __init__(self, trackers: dict[str, TradeIdTracker]):
        self.trackers = trackers
        self._new: dict[str, list[tuple[int, int, int, str]]] = {}
        self.reasons: dict[str, dict[str, int]] = {}   # announced, not yet reported healed

    def opened(self, symbol: str, a: int, b: int, opened_ms: int, reason: str) -> None:
        self._new.setdefault(symbol, []).append((a, b, opened_ms, reason))

    def pending_new(self) -> int:
        return sum(len(v) for v in self._new.values())

    def announcements(self, now_ms: int, grace_ms: int, force: bool = False):
        """Yield ``(symbol, Announcement)`` for the gaps whose grace has passed (all of them
        with ``force``); the caller yields to the event loop between symbols."""
        cutoff = now_ms - grace_ms
        for sym in list(self._new):
            pending = self._new[sym]
            owed = self.trackers[sym].owed
            ann = Announcement()
            keep = []
            for g in pending:
                a, b, opened, reason = g
                if not force and opened > cutoff:
                    keep.append(g)
                    continue
                left = owed.count_in(a, b)
                if not left:
                    ann.late += 1
                    continue
                ann.gaps += 1
                ann.missing += left
                ann.first = a if ann.first is None else min(ann.first, a)
                ann.last = b if ann.last is None else max(ann.last, b)
                ann.reasons[reason] = ann.reasons.get(reason, 0) + 1
            if keep:
                self._new[sym] = keep
            else:
                del self._new[sym]
            if ann.gaps or ann.late:
                if ann.gaps:
                    r = self.reasons.setdefault(sym, {})
                    for k, n in ann.reasons.items():
                        r[k] = r.get(k, 0) + n
                yield sym, ann

    def schedule(self, now_ms: int, grace_ms: int, force: bool = False) -> list[str]:
        """Symbols owing ids past their grace, the oldest debt first."""
        cutoff = now_ms - grace_ms
        out = []
        for sym, t in self.trackers.items():
            o = t.owed
            if o and (force or o.opened[0] <= cutoff or self.first_due(sym, cutoff) is not None):
                out.append((o.opened[0], sym))
        out.sort()
        return [s for _, s in out]

    def first_due(self, sym: str, cutoff: int | None) -> tuple[int, int] | None:
        """The lowest owed interval past its grace (``cutoff`` None: the lowest at all)."""
        o = self.trackers[sym].owed
        for k in range(min(len(o), _SCAN)):
            if cutoff is None or o.opened[k] <= cutoff:
                return o.starts[k], o.ends[k]
        return None

    def figures(self, budget_weight_per_min: int) -> tuple[dict[str, int], int, float]:
        """(owed trades per symbol, requests to pay everything, seconds that takes at
        ``budget_weight_per_min``)."""
        per = {s: t.owed.total for s, t in self.trackers.items()}
        requests = sum(t.owed.pages(PAGE) for t in self.trackers.values() if t.owed)
        eta = requests * AGG_TRADES_WEIGHT * 60.0 / max(1, budget_weight_per_min)
        return per, requests, eta
