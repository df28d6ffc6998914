"""Every fault kind, observed by a real loopback client (issue 6): what the capture will face."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ofi_cvd_harvest.sim.faults import FaultConfig

TRADES = "/market/stream?streams=btcusdt@aggTrade"


def collect(sim, n: int, path: str = TRADES, timeout: float = 20.0, gap: float | None = None):
    """(arrival time, raw text) of up to ``n`` frames, stopping early if the server closes or
    (with ``gap``) 20 frames after the first silence of at least ``gap`` seconds."""
    out = []
    deadline = time.monotonic() + timeout
    stop_at = n
    try:
        with connect(sim.ws_url + path, max_size=2**22, max_queue=None) as ws:
            while len(out) < stop_at and time.monotonic() < deadline:
                out.append((time.monotonic(), ws.recv(timeout=timeout)))
                if gap and len(out) > 1 and out[-1][0] - out[-2][0] >= gap and stop_at == n:
                    stop_at = len(out) + 20
    except ConnectionClosed as exc:
        out.append((time.monotonic(), exc))
    return out


def trade_ids(frames):
    ids = []
    for _, f in frames:
        if isinstance(f, Exception):
            continue
        try:
            d = json.loads(f)["data"]
        except (ValueError, KeyError, TypeError):
            continue
        if d.get("e") == "aggTrade" and type(d.get("a")) is int:
            ids.append(d["a"])
    return ids


def make(factory, spec, **kw):
    return factory(["BTCUSDT"], seed=9, speed=30, faults=spec, **kw)


def test_parse_and_bad_specs():
    c = FaultConfig.parse("drop=0.01, duplicate=0.02,cut=30,latency_ms=100")
    assert (c.drop, c.duplicate, c.cut, c.latency_ms) == (0.01, 0.02, 30.0, 100.0)
    assert FaultConfig.parse("") == FaultConfig()
    for bad in ("drop", "drop=x", "drop=1.5", "drop=-0.1", "nosuch=0.1", "cut=0", "drop=nan"):
        with pytest.raises(ValueError):
            FaultConfig.parse(bad)


def test_drop_leaves_id_gaps_that_rest_fills(simulator_factory):
    sim = make(simulator_factory, "drop=0.05")
    ids = trade_ids(collect(sim, 600))
    missing = sorted(set(range(ids[0], ids[-1] + 1)) - set(ids))
    assert missing and len(missing) < 0.15 * len(ids)
    with urllib.request.urlopen(f"{sim.rest_url}/fapi/v1/aggTrades?symbol=BTCUSDT"
                                f"&fromId={ids[0]}&limit=1000") as r:
        rest = {t["a"] for t in json.loads(r.read())}
    assert set(missing) <= rest        # dropped on the wire, still in the ground truth
    assert sim.stats["fault_drop"] >= len(missing)


def test_duplicate(simulator_factory):
    ids = trade_ids(collect(make(simulator_factory, "duplicate=0.05"), 400))
    assert len(ids) > len(set(ids))
    assert sorted(set(ids)) == list(range(min(ids), max(ids) + 1))    # nothing lost


def test_reorder(simulator_factory):
    ids = trade_ids(collect(make(simulator_factory, "reorder=0.05"), 400))
    assert any(b < a for a, b in zip(ids, ids[1:]))
    assert len(ids) == len(set(ids))


def test_latency_spikes(simulator_factory):
    frames = collect(make(simulator_factory, "latency=0.01,latency_ms=400"), 2000, gap=0.35)
    gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:])]
    assert max(gaps) >= 0.35


def test_stall(simulator_factory):
    frames = collect(make(simulator_factory, "stall=0.005,stall_s=1.0"), 2000, gap=0.9)
    gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:])]
    assert max(gaps) >= 0.9
    ids = trade_ids(frames)
    assert sorted(ids) == list(range(ids[0], ids[0] + len(ids)))     # backlog delivered


def test_malformed_json(simulator_factory):
    frames = collect(make(simulator_factory, "malformed=0.05"), 300)
    bad = 0
    for _, f in frames:
        try:
            json.loads(f)
        except ValueError:
            bad += 1
    assert 0 < bad < 60


def test_bad_values(simulator_factory):
    frames = collect(make(simulator_factory, "badvalue=0.1"), 400)
    kinds = set()
    for _, f in frames:
        d = json.loads(f)["data"]
        if d.get("e") != "aggTrade":
            kinds.add("unknown_event")
        elif "s" not in d:
            kinds.add("missing_field")
        elif type(d["a"]) is not int or type(d["E"]) is not int:
            kinds.add("wrong_type")
        elif math.isnan(float(d["q"])):
            kinds.add("nan")
        elif float(d["q"]) < 0:
            kinds.add("negative")
    assert kinds == {"unknown_event", "missing_field", "wrong_type", "nan", "negative"}


def test_disconnect_aborts_without_close_frame(simulator_factory):
    frames = collect(make(simulator_factory, "disconnect=0.01"), 5000)
    exc = frames[-1][1]
    assert isinstance(exc, ConnectionClosed) and exc.rcvd is None      # TCP cut, no close frame
    assert len(frames) < 5000


def test_cut_closes_every_connection_at_age(simulator_factory):
    sim = make(simulator_factory, "cut=1.0")
    t0 = time.monotonic()
    frames = collect(sim, 10**6, timeout=10)
    assert isinstance(frames[-1][1], ConnectionClosed)
    assert 0.8 < time.monotonic() - t0 < 4


def test_http_faults(simulator_factory):
    sim = make(simulator_factory, "http429=0.3,http5xx=0.3")
    seen = []
    for _ in range(40):
        try:
            with urllib.request.urlopen(sim.rest_url + "/fapi/v1/time") as r:
                seen.append(r.status)
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
            assert body["code"] in (-1003, -1001)
            if e.code == 429:
                assert int(e.headers["Retry-After"]) >= 1
            seen.append(e.code)
    assert 200 in seen and 429 in seen and any(s >= 500 for s in seen)


def test_faults_are_seeded():
    """The fault pattern of a connection depends only on (seed, connection ordinal)."""
    from ofi_cvd_harvest.sim.faults import MessageFaults
    cfg = FaultConfig.parse("drop=0.05,duplicate=0.05,reorder=0.05")
    def picks(seed: int, ordinal: int) -> list:
        f = MessageFaults(cfg, seed, ordinal)
        return [f.pick() for _ in range(500)]

    seq = [picks(1, 1), picks(1, 1), picks(2, 1), picks(1, 2)]
    assert seq[0] != seq[3]
    assert seq[0] == seq[1] != seq[2]
    assert {"drop", "duplicate", "reorder", None} == set(seq[0])
    assert MessageFaults(FaultConfig(), 1, 1).pick() is None


@pytest.mark.slow
def test_soak_all_faults_server_survives(simulator_factory):
    """Every fault at once for ~40 s with a client that keeps reconnecting: the server keeps
    serving, every fault kind fires, REST stays consistent."""
    sim = simulator_factory(["BTCUSDT", "ETHUSDT"], seed=13, speed=60, faults=(
        "disconnect=0.0005,drop=0.002,duplicate=0.002,reorder=0.002,latency=0.001,"
        "malformed=0.002,badvalue=0.002,stall=0.0005,cut=8,http429=0.05,http5xx=0.05,"
        "latency_ms=200,stall_s=0.5"))
    end = time.monotonic() + 40
    frames = 0
    while time.monotonic() < end:
        got = collect(sim, 10**6, "/stream?streams=btcusdt@aggTrade/ethusdt@depth10@100ms",
                      timeout=min(10.0, max(0.5, end - time.monotonic())))
        frames += len(got)
    stats = sim.stats
    for kind in ("disconnect", "drop", "duplicate", "reorder", "latency", "malformed",
                 "badvalue", "stall"):
        assert stats[f"fault_{kind}"] > 0, kind
    assert stats["connections"] >= 3 and frames > 10_000
    ids = [g["agg_trade_id"] for g in sim.ground_truth("BTCUSDT")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
