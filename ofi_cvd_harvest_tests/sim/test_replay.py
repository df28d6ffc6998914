"""The replay source on the real recordings, driven directly (no sockets): what it emits,
what REST answers, and that a diff-depth client syncs from it at any replay position."""

from __future__ import annotations

from pathlib import Path

import pytest

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.localbook import BookTop, LocalBook
from ofi_cvd_harvest.sim import bookcheck, recordings
from ofi_cvd_harvest.sim.replay import ReplaySource, open_replay
from ofi_cvd_harvest.sim.source import MarketSource

REAL = REALDATA
HFT = REAL / "hftbacktest_usdm"
CRYPTOFEED = REAL / "cryptofeed_binance_futures"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="realdata/ not available")


def file_trades(path_glob: str, symbol: str) -> list[tuple]:
    import glob
    import gzip

    import orjson
    out = []
    for f in sorted(glob.glob(path_glob)):
        with gzip.open(f, "rb") as fh:
            for line in fh:
                obj = orjson.loads(line.split(b" ", 1)[1])
                if obj.get("stream", "").endswith("@trade") and obj["data"]["s"] == symbol:
                    d = obj["data"]
                    out.append((d["t"], d["p"], d["q"], d["m"], d["T"]))
    return out


@pytest.fixture(scope="module")
def btc_recs():
    return recordings.load(str(HFT / "btcusdt_2024071*.gz"))


def drain(src: ReplaySource, streams: set[str], step_ms: int = 250):
    """Walk the replay clock to the end in ``step_ms`` steps; yield each poll's messages."""
    now = src.first_ms
    while not src.finished:
        now += step_ms
        yield now, src.poll(now, streams)


def test_is_a_market_source_with_recorded_symbols_and_clock(btc_recs):
    src = ReplaySource(btc_recs, speed=10, autostart=True, start_delay_s=0)
    assert isinstance(src, MarketSource)
    assert src.symbols == ("BTCUSDT",)
    # recorder ran ~1.3-1.5 s behind E: the replay clock reads like the exchange's
    assert 1200 < src.offset_ms < 1700
    assert src.first_ms // 86_400_000 != src.last_ms // 86_400_000     # crosses midnight
    info = src.exchange_info()["symbols"][0]
    tick = [f for f in info["filters"] if f["filterType"] == "PRICE_FILTER"][0]["tickSize"]
    assert tick == "0.1" and info["quantityPrecision"] == 3


def test_waits_for_a_subscriber_before_the_clock_runs(btc_recs):
    src = ReplaySource(btc_recs, speed=1000, start_delay_s=0.0)
    assert src.poll(src.last_ms, set()) == [] and src.server_time_ms() == src.first_ms
    assert src.poll(src.last_ms, {"btcusdt@aggTrade"}) == []    # starts the clock
    assert src.started
    assert src.poll(src.last_ms, {"btcusdt@aggTrade"})          # now it flows


def test_serves_every_recorded_trade_as_aggtrade_once_in_order(btc_recs):
    src = ReplaySource(btc_recs, speed=1, autostart=True, start_delay_s=0)
    got, last_ts = [], 0
    for _, msgs in drain(src, {"btcusdt@aggTrade"}):
        for m in msgs:
            assert m.stream == "btcusdt@aggTrade" and m.ts_ms >= last_ts
            last_ts = m.ts_ms
            d = m.data
            assert d["e"] == "aggTrade" and d["a"] == d["f"] == d["l"]
            got.append((d["a"], d["p"], d["q"], d["m"], d["T"]))
    want = file_trades(str(HFT / "btcusdt_2024071*.gz"), "BTCUSDT")
    assert got == want and len(want) == 10_701
    # REST aggTrades answers from the recording (fromId, time window, most recent)
    ids = [t[0] for t in want]
    page = src.agg_trades("BTCUSDT", from_id=ids[500], limit=1000)
    assert [t["a"] for t in page] == ids[500:1500]
    assert set(page[0]) == {"a", "p", "q", "f", "l", "T", "m"}
    t0, t1 = want[100][4], want[200][4]
    win = src.agg_trades("BTCUSDT", start_ms=t0, end_ms=t1, limit=1000)
    assert [t["a"] for t in win] == [t[0] for t in want if t0 <= t[4] <= t1]
    assert [t["a"] for t in src.agg_trades("BTCUSDT", limit=3)] == ids[-3:]
    assert len(src.ground_truth("BTCUSDT")) == len(want)


def test_rest_trades_visible_only_once_emitted(btc_recs):
    src = ReplaySource(btc_recs, speed=1, autostart=True, start_delay_s=0)
    assert src.agg_trades("BTCUSDT", limit=5) == []
    src.poll(src.first_ms + 30_000, {"btcusdt@aggTrade"})
    seen = src.agg_trades("BTCUSDT", limit=1000)
    assert seen and all(t["T"] <= src.first_ms + 30_000 for t in seen)
    with pytest.raises(KeyError):
        src.agg_trades("ETHUSDT")


def _client_sync(src: ReplaySource, sym: str, join_after_ms: int):
    """A Binance-procedure diff client that subscribes at ``join_after_ms`` into the replay:
    buffer, fetch the REST depth snapshot once the first event arrived, sync, verify."""
    stream = f"{sym.lower()}@depth@100ms"
    book = LocalBook(sym, levels=10)
    rows, problems, tickers, snap_ids = [], [], [], []
    joined = False
    for now, msgs in drain(src, {stream, f"{sym.lower()}@bookTicker"}):
        for m in msgs:
            if m.stream.endswith("bookTicker"):
                tickers.append(decode.book_ticker(m.data))
                continue
            if now - src.first_ms < join_after_ms:
                continue
            joined = True
            for o in book.feed(decode.depth_update(m.data)):
                (rows if isinstance(o, BookTop) else problems).append(o)
        if joined and book.needs_snapshot:
            snap = decode.depth_snapshot(src.depth_snapshot(sym, 1000))
            snap_ids.append(snap.last_update_id)
            for o in book.apply_snapshot(snap):
                (rows if isinstance(o, BookTop) else problems).append(o)
    chk = bookcheck.compare(rows, tickers, bookcheck.SymbolCheck(sym))
    return rows, problems, chk, snap_ids


@pytest.mark.parametrize("join_after_ms", [0, 200_000, 330_000])
def test_diff_client_syncs_from_replay_snapshots_at_any_position(btc_recs, join_after_ms):
    """Before the first event: the recorded snapshot; later (incl. after midnight): a snapshot
    rebuilt at the replay position. Either way the client syncs first time, never breaks,
    and its best bid/ask equals the recorded bookTicker on every comparison."""
    src = ReplaySource(btc_recs, speed=1, autostart=True, start_delay_s=0)
    rows, problems, chk, snap_ids = _client_sync(src, "BTCUSDT", join_after_ms)
    assert problems == [] and len(snap_ids) == 1
    recorded = next(r.data["lastUpdateId"] for r in btc_recs if r.kind == "snapshot")
    assert (snap_ids[0] == recorded) == (join_after_ms == 0)
    assert rows[0].resynced and sum(r.resynced for r in rows) == 1
    assert chk.compared > 1000 and chk.matched == chk.compared, chk.first_mismatch
    assert src.sync_problems == []


def test_partial_depth_is_served_from_the_reconstructed_book(btc_recs):
    src = ReplaySource(btc_recs, speed=1, autostart=True, start_delay_s=0)
    ref = {r.rec.final_update_id: r for r in
           bookcheck.check_recording(btc_recs)["BTCUSDT"].rows}
    n, last_u = 0, None
    for _, msgs in drain(src, {"btcusdt@depth10@100ms", "btcusdt@depth5@100ms"}):
        for m in msgs:
            rec = decode.depth_update(m.data)
            want = ref[rec.final_update_id]
            k = 10 if "depth10" in m.stream else 5
            assert [p for p, _ in rec.bids] == want.bid_px[:k]
            assert [q for _, q in rec.asks] == want.ask_qty[:k]
            if k == 10:
                assert last_u is None or rec.prev_final_update_id == last_u
                last_u = rec.final_update_id
                n += 1
    assert n == len(ref)


def test_cryptofeed_replay_serves_recorded_rest_snapshots_and_klines():
    src = open_replay(CRYPTOFEED / "BINANCE_FUTURES.ws.1.0", speed=1, autostart=True,
                      start_delay_s=0)
    assert src.symbols == ("AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT")
    snap = src.depth_snapshot("SUSHIUSDT", 5)
    assert snap["lastUpdateId"] == 600859605926 and len(snap["bids"]) == 5
    streams = {"sushiusdt@depth@100ms", "sushiusdt@aggTrade", "sushiusdt@kline_1m"}
    kinds = {}
    for _, msgs in drain(src, streams):
        for m in msgs:
            kinds[m.stream] = kinds.get(m.stream, 0) + 1
    assert kinds == {"sushiusdt@depth@100ms": 255, "sushiusdt@aggTrade": 40,
                     "sushiusdt@kline_1m": 22}
    assert src.sync_problems == []
    after = src.depth_snapshot("SUSHIUSDT", 1000)              # rebuilt at the end
    assert after["lastUpdateId"] > 600859605926


def test_open_replay_accepts_globs_and_lists():
    src = open_replay(f"{HFT}/btcusdt_20240718.gz,{HFT}/ethusdt_20240718.gz", speed=2)
    assert src.symbols == ("BTCUSDT", "ETHUSDT") and not src.started
    with pytest.raises(recordings.RecordingError):
        open_replay(HFT / "nope_*.gz")


def test_recording_without_snapshot_refuses_depth_honestly():
    from ofi_cvd_harvest.sim.rest import ErrorReply
    src = open_replay(HFT / "btcusdt_20240719.gz", speed=1, autostart=True, start_delay_s=0)
    src.poll(src.first_ms + 60_000, {"btcusdt@depth@100ms"})
    with pytest.raises(ErrorReply) as ei:
        src.depth_snapshot("BTCUSDT", 1000)
    assert ei.value.status == 503
    assert src.agg_trades("BTCUSDT", limit=5)                  # trades still served
