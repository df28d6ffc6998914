"""Failover with real processes: the simulator on loopback, a real PostgreSQL for the lease,
``ofi_cvd_harvest.cli capture`` processes sharing one data directory, each with its own
artifacts directory ("hosts").

A holds shard X; B (same shard) exits 3 at once naming A; A is killed with SIGKILL; C ("another
host": an empty artifacts directory) takes the shard over, rebuilds the resume point from the
lake, recovers A's segments, heals the gap through REST and stops. Every trade of the window is
then in the raw files, duplicates within the DoD's 0.5 %. And a holder whose database session is
terminated stops (fencing), says so, and exits 5.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from ofi_cvd_harvest.capture import checkpoint as ckpt
from ofi_cvd_harvest.capture.outcome import EXIT_LEASE_LOST, EXIT_SHARD_HELD
from ofi_cvd_harvest.storage.objectstore import ObjectStore

from ..capture.rawcheck import files, read
from ..procs import reap

ROOT = Path(__file__).resolve().parents[2]
SYMS = ("BTCUSDT", "ETHUSDT")


def _cmd(tmp: Path, host: str, sim, url: str, seconds: float, shard: str = "X") -> list[str]:
    return [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", ",".join(SYMS),
            "--run-seconds", str(seconds), "--data-dir", str(tmp / "data"),
            "--artifacts-dir", str(tmp / host), "--ws-base-url", sim.ws_url,
            "--rest-base-url", sim.rest_url, "--prometheus-port", "0", "--shard", shard,
            "--lease-url", url]


def _env() -> dict[str, str]:
    return {**os.environ, "PARQUET_ROTATE_SEC": "1", "PYTHONPATH": str(ROOT)}


def _holder_pid(pg_server, url: str) -> int | None:
    """The client pid in the application_name of the session holding any advisory lock."""
    out = pg_server.sql("select a.application_name from pg_locks l join pg_stat_activity a "
                        "on a.pid = l.pid where l.locktype = 'advisory' and l.granted",
                        db=url.rsplit("/", 1)[1]).stdout.split()
    pids = [int(w[4:]) for w in out if w.startswith("pid=")]
    return pids[0] if pids else None


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_failover_kill_9_holder_another_host_takes_over(simulator_factory, lease_db, pg_server,
                                                        tmp_path):
    sim = simulator_factory(SYMS, seed=41, speed=2.0)
    a = subprocess.Popen(_cmd(tmp_path, "hostA", sim, lease_db, 600), cwd=ROOT, env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    c = None
    try:
        _wait(lambda: _holder_pid(pg_server, lease_db) == a.pid, 30, "A to hold the lease")
        _wait(lambda: len(files(tmp_path / "data", "agg_trade")) >= 4, 30, "A's first files")
        t0 = time.monotonic()
        b = subprocess.run(_cmd(tmp_path, "hostB", sim, lease_db, 600), cwd=ROOT, env=_env(),
                           capture_output=True, text=True, timeout=60)
        b_sec = time.monotonic() - t0
        assert b.returncode == EXIT_SHARD_HELD, b.stderr[-2000:]
        line = b.stderr.strip()
        assert len(line.splitlines()) == 1 and f"pid={a.pid} shard=X" in line, line
        assert not any((tmp_path / "hostB").rglob("state"))     # B touched nothing
        time.sleep(1.5)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed = time.monotonic()
        c = subprocess.Popen(_cmd(tmp_path, "hostC", sim, lease_db, 8), cwd=ROOT, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait(lambda: _holder_pid(pg_server, lease_db) == c.pid, 30, "C to take the shard over")
        takeover_sec = time.monotonic() - killed
        out, err = c.communicate(timeout=90)
        assert c.returncode == 0, err[-3000:]
    finally:
        reap(a)
        if c is not None:
            reap(c)
    # what C could not heal before its shutdown budget is owed in its checkpoint and healed by
    # its next start (as in the fault drill), part of the contract rather than a failure
    settle = 0
    host_c = tmp_path / "hostC" / "shards" / "X"    # a shard's artifacts (universe/local.py)
    while any(c.open_gaps for c in ckpt.load(ckpt.path_in(host_c)).symbols.values()):
        assert settle < 3, "open gaps never healed"
        settle += 1
        subprocess.run(_cmd(tmp_path, "hostC", sim, lease_db, 5), cwd=ROOT, env=_env(),
                       capture_output=True, timeout=90, check=True)
    data = tmp_path / "data"
    ops = read(data, "ops")
    rebuilt = ops.filter(pl.col("event_type") == "checkpoint_rebuilt")["meta_json"].to_list()
    assert rebuilt and json.loads(rebuilt[0])["source"] == "lake", rebuilt
    figures = {"b_refused_sec": round(b_sec, 2), "takeover_sec": round(takeover_sec, 2),
               "settle_runs": settle}
    for sym in SYMS:
        truth = sorted(int(r["agg_trade_id"]) for r in sim.ground_truth(sym))
        ids = read(data, "agg_trade", sym)["agg_trade_id"].to_list()
        lo, hi = min(ids), max(ids)
        want = [i for i in truth if lo <= i <= hi]
        missing = sorted(set(want) - set(ids))
        assert not missing, f"{sym}: {len(missing)} trades missing, e.g. {missing[:10]}"
        assert set(ids) <= set(truth)
        dups = len(ids) - len(set(ids))
        assert dups <= 0.005 * len(set(ids)), (sym, dups, len(ids))
        healed = read(data, "agg_trade", sym).filter(pl.col("source") == "rest").height
        figures[sym] = {"window": len(want), "duplicates": dups, "healed": healed}
    assert sum(figures[s]["healed"] for s in SYMS) > 0      # the gap went through REST
    print("\nfailover:", figures)


def test_holder_whose_session_is_terminated_stops_and_says_so(simulator, lease_db, pg_server,
                                                               tmp_path):
    a = subprocess.Popen(_cmd(tmp_path, "hostA", simulator, lease_db, 600, shard="P"), cwd=ROOT,
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _holder_pid(pg_server, lease_db) == a.pid, 30, "A to hold the lease")
        _wait(lambda: files(tmp_path / "data", "agg_trade"), 30, "A's first files")
        db = lease_db.rsplit("/", 1)[1]
        pg_server.sql("select pg_terminate_backend(pid) from pg_stat_activity "
                      f"where application_name like '%pid={a.pid} shard=P'", db=db)
        out, err = a.communicate(timeout=60)
    finally:
        reap(a)
    assert a.returncode == EXIT_LEASE_LOST, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("ofi-cvd-harvest capture: shard P: lease lost"), last
    assert "stopped capturing" in last
    ops = read(tmp_path / "data", "ops")
    assert "lease_lost" in ops["event_type"].to_list()


@pytest.mark.slow
def test_failover_with_an_s3_lease_waits_for_expiry_then_takes_over(simulator_factory, lake,
                                                                    tmp_path):
    """The same failover with the lease object on a moto_server: the dead holder's lease is
    taken once it expired (TTL 6 s here), by a capture retried while it exits 3."""
    url, _ = lake
    bucket = url.split("/")[2]
    store = ObjectStore(bucket)
    sim = simulator_factory(SYMS, seed=43, speed=2.0)
    env = {**_env(), "CAPTURE_LEASE_TTL_SEC": "6", "CAPTURE_LEASE_RENEW_SEC": "2"}

    def holder() -> str:
        body = store.get("lake/leases/X.json")
        return json.loads(body)["holder"] if body else ""

    a = subprocess.Popen(_cmd(tmp_path, "hostA", sim, url, 600), cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = None
    try:
        _wait(lambda: f"pid={a.pid} " in holder(), 30, "A to hold the lease")
        _wait(lambda: len(files(tmp_path / "data", "agg_trade")) >= 4, 30, "A's first files")
        b = subprocess.run(_cmd(tmp_path, "hostB", sim, url, 600), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
        assert b.returncode == EXIT_SHARD_HELD and f"pid={a.pid} shard=X" in b.stderr, b.stderr
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed = time.monotonic()
        attempts = 0
        while True:                       # a scheduler retrying the shard's capture
            attempts += 1
            c = subprocess.Popen(_cmd(tmp_path, "hostC", sim, url, 8), cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                c.wait(3)
            except subprocess.TimeoutExpired:
                break
            assert c.returncode == EXIT_SHARD_HELD, c.stderr.read()[-2000:]
            assert time.monotonic() - killed < 60, "the dead holder's lease never expired"
            time.sleep(0.5)
        _wait(lambda: f"pid={c.pid} " in holder(), 30, "C to hold the lease")
        takeover_sec = time.monotonic() - killed
        out, err = c.communicate(timeout=90)
        assert c.returncode == 0, err[-3000:]
    finally:
        reap(a)
        if c is not None:
            reap(c)
    figures = {"takeover_sec": round(takeover_sec, 2), "attempts": attempts}
    for sym in SYMS:
        truth = sorted(int(r["agg_trade_id"]) for r in sim.ground_truth(sym))
        ids = read(tmp_path / "data", "agg_trade", sym)["agg_trade_id"].to_list()
        want = [i for i in truth if min(ids) <= i <= max(ids)]
        assert not sorted(set(want) - set(ids)), sym
        dups = len(ids) - len(set(ids))
        assert dups <= 0.005 * len(set(ids)), (sym, dups)
        figures[sym] = {"window": len(want), "duplicates": dups}
    print("\ns3 failover:", figures)
