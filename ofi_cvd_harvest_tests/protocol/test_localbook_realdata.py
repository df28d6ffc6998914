"""The local book on the real recordings in ``realdata/`` (issue 7 must-show).

Each recording is replayed through :class:`LocalBook` exactly as the capture would see it: the
diff stream in arrival order, the recorded REST snapshot at the moment it was taken. The book
must sync from that snapshot, report zero ``pu`` breaks (the recordings are gap-free), and its
best bid/ask must equal the recorded ``bookTicker`` (the last one whose ``u`` <= the row's
``u``) on every comparison. Removing one depth message must give exactly one detected gap, a
resync, and a correct book again afterwards.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.localbook import BookProblem, BookTop, LocalBook
from ofi_cvd_harvest.sim import bookcheck, recordings

REAL = REALDATA
CRYPTOFEED = REAL / "cryptofeed_binance_futures" / "BINANCE_FUTURES.ws.1.0"
HFT = REAL / "hftbacktest_usdm"
# The removed depth message (index among BTCUSDT depth events of the 18th+19th pair). Chosen
# because it matters: without the chain check, losing it leaves 81 wrong top-10 rows (see the
# control test); many messages only touch levels that are overwritten soon after.
VICTIM_K = 1800
MIDNIGHT_MS = int(dt.datetime(2024, 7, 19, tzinfo=dt.timezone.utc).timestamp() * 1000)

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="realdata/ not available")


@pytest.fixture(scope="module")
def hft_btc():
    return recordings.load(str(HFT / "btcusdt_2024071*.gz"))


def _assert_clean(chk: bookcheck.SymbolCheck, min_compared: int) -> None:
    assert chk.problems == [], chk.problems[:3]
    assert chk.rows and chk.rows[0].resynced                  # synced from the snapshot
    assert sum(r.resynced for r in chk.rows) == 1             # ...once, never again
    assert chk.compared >= min_compared
    assert chk.matched == chk.compared, chk.first_mismatch    # 100 %


def test_cryptofeed_four_symbols_sync_from_recorded_snapshots_and_match_bookticker():
    recs = recordings.load(CRYPTOFEED)
    snaps = {r.symbol: r.data["lastUpdateId"] for r in recs if r.kind == recordings.KIND_SNAPSHOT}
    assert sorted(snaps) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    checks = bookcheck.check_recording(recs)
    assert sorted(checks) == sorted(snaps)
    for sym, chk in checks.items():
        _assert_clean(chk, min_compared=100)
        first = chk.rows[0].rec                               # U <= lastUpdateId <= u
        assert first.first_update_id <= snaps[sym] <= first.final_update_id
    total = sum(c.compared for c in checks.values())
    assert total == sum(c.matched for c in checks.values()) >= 700


@pytest.mark.parametrize("sym", ["btcusdt", "ethusdt"])
def test_hftbacktest_pair_syncs_and_continues_across_midnight(sym, hft_btc):
    recs = hft_btc if sym == "btcusdt" else recordings.load(str(HFT / f"{sym}_2024071*.gz"))
    checks = bookcheck.check_recording(recs)
    chk = checks[sym.upper()]
    _assert_clean(chk, min_compared=8500)
    es = [r.rec.event_ts_ms for r in chk.rows]
    assert min(es) < MIDNIGHT_MS <= max(es)                    # one chain across midnight
    before = sum(e < MIDNIGHT_MS for e in es)
    assert 3000 < before < len(es) - 5000


def test_removed_depth_message_gives_one_gap_resync_and_correct_book(hft_btc):
    depth_idx = [i for i, r in enumerate(hft_btc) if r.kind == recordings.KIND_DEPTH]
    victim = depth_idx[VICTIM_K]
    resync_after = 25                      # depth events between the gap and the new snapshot
    ref = LocalBook("BTCUSDT", levels=10)  # independent full reconstruction
    bk = LocalBook("BTCUSDT", levels=10)   # sees the recording minus one message
    ref_rows: dict[int, BookTop] = {}
    rows: list[BookTop] = []
    problems: list[BookProblem] = []
    tickers = []
    since_gap = None
    for i, r in enumerate(hft_btc):
        if r.kind == recordings.KIND_TICKER:
            tickers.append(decode.book_ticker(r.data))
            continue
        if r.kind == recordings.KIND_SNAPSHOT:
            snap = decode.depth_snapshot(r.data)
            for o in ref.apply_snapshot(snap):
                ref_rows[o.rec.final_update_id] = o
            rows.extend(bk.apply_snapshot(snap))
            continue
        if r.kind != recordings.KIND_DEPTH:
            continue
        rec = decode.depth_update(r.data)
        for o in ref.feed(rec):
            assert isinstance(o, BookTop)
            ref_rows[o.rec.final_update_id] = o
        if i == victim:
            continue
        for o in bk.feed(rec):
            (rows if isinstance(o, BookTop) else problems).append(o)
        if problems and since_gap is None:
            since_gap = 0
        elif since_gap is not None and bk.needs_snapshot:
            since_gap += 1
            if since_gap == resync_after:
                # a later snapshot, rebuilt from the independent reconstruction
                for o in bk.apply_snapshot(ref.snapshot(limit=1000)):
                    (rows if isinstance(o, BookTop) else problems).append(o)
    assert [p.kind for p in problems] == ["pu_break"]
    assert bk.pu_breaks == 1 and bk.resyncs == 1 and bk.synced
    gap_u = problems[0].detail["pu"]
    resynced = [r for r in rows if r.resynced]
    assert len(resynced) == 2                                  # initial sync + the resync
    after = [r for r in rows if r.rec.final_update_id > gap_u]
    assert after[0].resynced and len(after) > 5000
    # no row was emitted for the unsynced stretch: the book jumps from before the gap to the
    # snapshot position
    skipped = [u for u in ref_rows if gap_u < u < after[0].rec.final_update_id]
    assert len(skipped) >= resync_after - 1
    # every row (before and after the gap) equals the independent reconstruction...
    for r in rows:
        want = ref_rows[r.rec.final_update_id]
        assert (r.bid_px, r.bid_qty, r.ask_px, r.ask_qty) == (
            want.bid_px, want.bid_qty, want.ask_px, want.ask_qty)
    # ...and the recorded bookTicker
    chk = bookcheck.compare(after, tickers, bookcheck.SymbolCheck("BTCUSDT"))
    assert chk.compared > 5000 and chk.matched == chk.compared, chk.first_mismatch


def test_silent_divergence_without_the_chain_check_is_real(hft_btc):
    """Control: the removed message matters -- a client that ignores the pu chain ends up
    with a wrong book (what peers get wrong), so the test above is not vacuous."""
    recs = [r for r in hft_btc if r.kind in (recordings.KIND_DEPTH, recordings.KIND_SNAPSHOT)]
    depth_idx = [i for i, r in enumerate(recs) if r.kind == recordings.KIND_DEPTH]
    victim = depth_idx[VICTIM_K]
    prev_u = None
    patched = []
    for i, r in enumerate(recs):
        if i == victim:
            continue
        if r.kind == recordings.KIND_DEPTH:       # re-chain: no break visible to the book
            d = dict(r.data)
            if prev_u is not None:
                d["pu"] = prev_u
            prev_u = d["u"]
            r = recordings.Recorded(r.recv_ms, r.kind, r.symbol, d)
        patched.append(r)
    _, good, _ = bookcheck.rebuild(recs)
    _, bad, _ = bookcheck.rebuild(patched)
    want = {r.rec.final_update_id: (r.bid_px, r.bid_qty, r.ask_px, r.ask_qty)
            for r in good["BTCUSDT"].rows}
    wrong = sum(want[r.rec.final_update_id] != (r.bid_px, r.bid_qty, r.ask_px, r.ask_qty)
                for r in bad["BTCUSDT"].rows)
    assert wrong > 0 or bad["BTCUSDT"].problems


def test_bookcheck_command_reports_full_match(capsys):
    assert bookcheck.main([str(CRYPTOFEED)]) == 0
    out = capsys.readouterr().out
    assert out.count("share=100.0000%") == 4 and "problems=0" in out
