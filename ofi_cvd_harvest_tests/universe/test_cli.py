"""``ofi-cvd-harvest shards`` as users run it: real processes, the simulator serving a universe
with pending, settling and delivery contracts (``simulate --status --delivery``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..procs import reap, terminate

SIM = [sys.executable, "-m", "ofi_cvd_harvest.cli", "simulate"]
SHARDS = [sys.executable, "-m", "ofi_cvd_harvest.cli", "shards"]
UNIVERSE = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "ADAUSDT",
            "NEWUSDT", "OLDUSDT"]


@pytest.fixture(scope="module")
def rest_url():
    p = subprocess.Popen(SIM + ["--symbols", ",".join(UNIVERSE), "--seed", "1",
                                "--status", "NEWUSDT=PENDING_TRADING,OLDUSDT=SETTLING",
                                "--delivery", "BTCUSDT,ETHUSDT"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = dict(p.stdout.readline().strip().split("=", 1) for _ in range(2))
        yield lines["rest_url"]
    finally:
        terminate(p)
        reap(p)


def shards(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("CAPTURE_SHARDS", "REST_BASE_URL")}
    return subprocess.run(SHARDS + list(args), capture_output=True, text=True, timeout=60,
                          env={**e, **(env or {})})


def test_prints_the_plan_of_the_trading_perpetuals(rest_url):
    p = shards("--shards", "3", "--rest-base-url", rest_url)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith(f"7 TRADING perpetuals from {rest_url}, 24 h quote volume ")
    assert out[0].endswith("3 shards of at most 200 symbols")
    rows = [line.split() for line in out[2:]]
    assert [r[0] for r in rows] == ["shard-00", "shard-01", "shard-02"]
    listed = sorted(s.rstrip(",") for r in rows for s in r[4:])
    assert listed == sorted(set(UNIVERSE) - {"NEWUSDT", "OLDUSDT"})   # no pending, settling, quarterly
    assert sum(float(r[2].rstrip("%")) for r in rows) == pytest.approx(100, abs=0.2)
    assert all(int(r[3]) == int(r[1]) for r in rows)                 # streams per connection
    p = shards("--rest-base-url", rest_url, "--symbols")
    assert p.stdout.strip() == ",".join(listed)


def test_json_then_previous_keeps_assignments(rest_url, tmp_path):
    p = shards("--rest-base-url", rest_url, "--json", env={"CAPTURE_SHARDS": "2"})
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert sorted(plan["shards"]) == ["shard-00", "shard-01"] and plan["room"] == 200
    # yesterday's plan: without SOLUSDT (listed since) and with GONEUSDT (delisted since),
    # and ADAUSDT on the other shard than a fresh plan puts it
    prev = {n: [s for s in syms if s != "SOLUSDT"] for n, syms in plan["shards"].items()}
    ada = next(n for n, syms in prev.items() if "ADAUSDT" in syms)
    other = "shard-01" if ada == "shard-00" else "shard-00"
    prev[ada].remove("ADAUSDT")
    prev[other] += ["ADAUSDT", "GONEUSDT"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"version": 1, "room": 200, "shards": prev}))
    p = shards("--rest-base-url", rest_url, "--shards", "2", "--previous", str(path))
    assert p.returncode == 0, p.stderr
    assert "note: delisted: GONEUSDT" in p.stdout and "note: listed: SOLUSDT" in p.stdout
    p = shards("--rest-base-url", rest_url, "--shards", "2", "--previous", str(path), "--json")
    kept = json.loads(p.stdout)["shards"]
    assert "ADAUSDT" in kept[other] and "GONEUSDT" not in kept[other]


def test_bad_input_is_one_line(rest_url, tmp_path):
    p = shards("--shards", "0", "--rest-base-url", rest_url)
    assert p.returncode == 2 and p.stderr.strip().startswith("ofi-cvd-harvest: setting --shards")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = shards("--rest-base-url", rest_url, "--previous", str(bad))
    assert p.returncode == 2 and p.stderr.strip() == (
        f"ofi-cvd-harvest shards: {bad}: not a shard plan (want the output of --json)")
    p = shards("--rest-base-url", "http://127.0.0.1:9")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("ofi-cvd-harvest shards: universe from http://127.0.0.1:9: ")


@pytest.mark.parametrize("args,says", [(["--status", "NEWUSDT=LISTED"], "bad listing status"),
                                       (["--delivery", "btc/usdt"], "invalid symbol list")])
def test_simulate_refuses_a_bad_universe_in_one_line(args, says):
    p = subprocess.run(SIM + args + ["--run-seconds", "1"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and says in p.stderr and p.stdout == ""
