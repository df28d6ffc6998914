"""Check a diff-depth book reconstruction against a recording's own ``bookTicker`` stream.

``bookTicker`` is pushed in real time for every change of the best level, with the update id
``u`` of that change. So the best bid/ask of a correct book after applying an event with final
id ``u`` equals the last ``bookTicker`` whose ``u`` is <= that id. This is an independent
check of the whole sync procedure (snapshot alignment, ``pu`` chain, level arithmetic) on real
data, used by the tests and by ``docs/book_and_replay.md``'s figures.

Rows outside the ticker coverage (before the first or after the last recorded ticker of the
symbol) are not compared: the ticker that applies to them was not recorded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from ..protocol import decode
from ..protocol.localbook import BookProblem, BookTop, LocalBook
from ..protocol.records import BookTicker
from .recordings import KIND_DEPTH, KIND_SNAPSHOT, KIND_TICKER, Recorded


@dataclass
class SymbolCheck:
    symbol: str
    rows: list[BookTop] = field(default_factory=list)
    problems: list[BookProblem] = field(default_factory=list)
    compared: int = 0
    matched: int = 0              # best bid/ask price and quantity all equal
    first_mismatch: tuple | None = None

    @property
    def share(self) -> float:
        return self.matched / self.compared if self.compared else float("nan")


def rebuild(recs: Iterable[Recorded], levels: int = 10) -> tuple[dict[str, LocalBook],
                                                                  dict[str, SymbolCheck],
                                                                  dict[str, list[BookTicker]]]:
    """Feed every depth event and recorded snapshot of ``recs`` to one LocalBook per symbol."""
    books: dict[str, LocalBook] = {}
    checks: dict[str, SymbolCheck] = {}
    tickers: dict[str, list[BookTicker]] = defaultdict(list)
    for r in recs:
        if r.kind == KIND_TICKER:
            tickers[r.symbol].append(decode.book_ticker(r.data))
            continue
        if r.kind not in (KIND_DEPTH, KIND_SNAPSHOT):
            continue
        book = books.get(r.symbol)
        if book is None:
            book = books[r.symbol] = LocalBook(r.symbol, levels=levels)
            checks[r.symbol] = SymbolCheck(r.symbol)
        if r.kind == KIND_DEPTH:
            out = book.feed(decode.depth_update(r.data))
        else:
            out = book.apply_snapshot(decode.depth_snapshot(r.data))
        chk = checks[r.symbol]
        for o in out:
            (chk.rows if isinstance(o, BookTop) else chk.problems).append(o)
    return books, checks, tickers


def compare(rows: Iterable[BookTop], tickers: list[BookTicker], chk: SymbolCheck) -> SymbolCheck:
    """Compare each row's best level with the last ticker whose ``u`` <= the row's ``u``."""
    ts = sorted(tickers, key=lambda t: t.update_id)
    us = [t.update_id for t in ts]
    if not us:
        return chk
    lo, hi = us[0], us[-1]
    for row in rows:
        u = row.rec.final_update_id
        if u < lo or u > hi:
            continue
        t = ts[bisect_right(us, u) - 1]
        chk.compared += 1
        got = (row.bid_px[0], row.bid_qty[0], row.ask_px[0], row.ask_qty[0])
        want = (t.bid_px, t.bid_qty, t.ask_px, t.ask_qty)
        if got == want:
            chk.matched += 1
        elif chk.first_mismatch is None:
            chk.first_mismatch = (u, got, want)
    return chk


def check_recording(recs: Iterable[Recorded], levels: int = 10) -> dict[str, SymbolCheck]:
    """Rebuild and compare every symbol of a recording; one :class:`SymbolCheck` each."""
    _, checks, tickers = rebuild(recs, levels)
    for sym, chk in checks.items():
        compare(chk.rows, tickers.get(sym, []), chk)
    return checks


def main(argv: list[str] | None = None) -> int:
    """``python -m ofi_cvd_harvest.sim.bookcheck PATH``: the table of docs/book_and_replay.md."""
    import sys

    from .recordings import load
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ofi_cvd_harvest.sim.bookcheck RECORDING", file=sys.stderr)
        return 2
    bad = 0
    for sym, chk in sorted(check_recording(load(args[0])).items()):
        kinds = sorted({p.kind for p in chk.problems})
        print(f"{sym}: rows={len(chk.rows)} compared={chk.compared} matched={chk.matched} "
              f"share={chk.share:.4%} problems={len(chk.problems)} {kinds or ''}")
        bad += chk.matched != chk.compared or bool(chk.problems)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
