"""End to end: simulator -> capture subprocess -> a real Prometheus scraping it every second.

Reads back through Prometheus' HTTP API that the harvester's metrics are present with sane
values, that the reconnect counter increases after the simulator cuts the connections
(fault ``cut``: every connection closed at a fixed age), that the dashboard's queries return
data, that the alert rules evaluate healthy, and that stopping the capture turns
``HarvesterDown`` pending.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .promtools import (CONFIG, JOB, PROMETHEUS, PrometheusServer, dashboard_exprs, free_port,
                        grafana_to_promql, load_dashboard, need,
                        promql_metric_names)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CUT_S = 12  # simulator closes every connection at this age -> one reconnect per endpoint


def _one(vals: dict[str, float]) -> float:
    assert len(vals) == 1, vals
    return next(iter(vals.values()))


def _by(vals: dict[str, float], label: str) -> dict[str, float]:
    return {json.loads(k)[label]: v for k, v in vals.items()}


@pytest.fixture
def capture_proc(simulator_factory, tmp_path):
    """A capture subprocess against a simulator; yields (proc, metrics target, simulator)."""
    need(PROMETHEUS, "prometheus")
    sim = simulator_factory(SYMBOLS, seed=11, speed=1.0, faults=f"cut={CUT_S}")
    port = free_port()
    env = dict(os.environ, PARQUET_ROTATE_SEC="3", LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--run-seconds", "120",
           "--symbols", ",".join(SYMBOLS), "--ws-base-url", sim.ws_url,
           "--rest-base-url", sim.rest_url, "--data-dir", str(tmp_path / "data"),
           "--artifacts-dir", str(tmp_path / "artifacts"), "--prometheus-port", str(port)]
    log = open(tmp_path / "capture.out", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc, f"127.0.0.1:{port}", sim, tmp_path / "capture.out"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


def test_prometheus_scrapes_a_capture_against_the_simulator(capture_proc, tmp_path):
    proc, target, sim, capture_log = capture_proc
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    with PrometheusServer(prom_dir, [target], rule_files=[CONFIG / "alert_rules.yml"]) as prom:
        def alive():
            assert proc.poll() is None, f"capture exited {proc.returncode}: " + \
                capture_log.read_text(errors="replace")[-3000:]

        # --- the target is up and the capture loop runs
        prom.wait_for(f'up{{job="{JOB}"}}', lambda v: list(v.values()) == [1.0], timeout=30)
        alive()
        assert _one(prom.values(f'capture_up{{job="{JOB}"}}')) == 1.0
        # value at the first scrape (0 unless a slow start let a cut happen already: then the
        # next cut, CUT_S later, is the one observed)
        reconnects_before = sum(prom.values(f'ws_reconnects_total{{job="{JOB}"}}').values())

        # --- trades flow: receive rate > 0 per symbol, messages on both connections
        rates = prom.wait_for(f'recv_rate_tps{{job="{JOB}"}}',
                              lambda v: len(v) == 2 and all(x > 0 for x in v.values()), timeout=20)
        rates = _by(rates, "symbol")
        assert set(rates) == set(SYMBOLS)
        assert all(0 < r < 2000 for r in rates.values()), rates
        msgs = prom.wait_for(f'sum by (endpoint) (rate(messages_total{{job="{JOB}"}}[5s]))',
                             lambda v: len(v) >= 2 and all(x > 0 for x in v.values()))
        assert len(msgs) == 2, msgs  # market (trades) and public (book)

        # --- latency quantiles from the histogram, in range on loopback
        for q, limit in ((0.5, 120.0), (0.99, 1000.0)):
            lat = prom.wait_for(
                f'histogram_quantile({q}, sum by (symbol, le) (rate(latency_ms_bucket{{job="{JOB}"}}[10s])))',
                lambda v: len(v) == 2 and all(x == x for x in v.values()))  # not NaN
            assert all(0.0 <= x <= limit for x in lat.values()), (q, lat)
        counts = _by(prom.values(f'latency_ms_count{{job="{JOB}"}}'), "symbol")
        assert all(c > 0 for c in counts.values()) and set(counts) == set(SYMBOLS)

        # --- freshness, rows written after rotation, live CVD gauges from the z engine
        ages = prom.values(f'last_message_age_seconds{{job="{JOB}"}}')
        assert ages and all(0 <= a < 10 for a in ages.values()), ages
        prom.wait_for(f'sum by (symbol) (data_rows_total{{job="{JOB}",table="agg_trade"}})',
                      lambda v: len(v) == 2 and all(x > 0 for x in v.values()), timeout=20)
        scale = prom.wait_for(f'cvd_scale_median{{job="{JOB}"}}',
                              lambda v: len(v) == 2 and all(x > 0 for x in v.values()), timeout=25)
        assert set(_by(scale, "symbol")) == set(SYMBOLS)
        hit = prom.values(f'cvd_floor_hit_rate{{job="{JOB}"}}')
        assert len(hit) == 2 and all(0.0 <= x <= 1.0 for x in hit.values()), hit
        alive()

        # --- the simulator cuts every connection at CUT_S: the reconnect counter increases
        after = prom.wait_for(f'sum(ws_reconnects_total{{job="{JOB}"}})',
                              lambda v: v and _one(v) > reconnects_before, timeout=2 * CUT_S + 25)
        assert sim.stats["age_cuts"] >= 1
        assert _one(after) >= reconnects_before + 1
        inc = prom.values(f'sum(increase(ws_reconnects_total{{job="{JOB}"}}[1m]))')
        assert _one(inc) > 0
        # trades keep flowing after the reconnect
        prom.wait_for(f'min(recv_rate_tps{{job="{JOB}"}})', lambda v: v and _one(v) > 0)
        alive()

        # --- every dashboard query is accepted; the per-symbol panels have data
        empty = []
        for title, expr in dashboard_exprs(load_dashboard()):
            if not prom.query(grafana_to_promql(expr, "5s")):
                empty.append(title)
        for must in ("Receive rate", "Latency p50 / p99", "Last message age", "Rows written",
                     "CVD scale median", "CVD floor hit rate", "Reconnects", "Capture up"):
            assert must not in empty, (must, empty)

        # --- metrics the dashboard filters by $symbol really carry a symbol label
        per_symbol = {n for _, e in dashboard_exprs(load_dashboard()) if '$symbol' in e
                      for n in promql_metric_names(e)}
        for name in sorted(per_symbol):
            series = prom.api("series", **{"match[]": f'{name}{{job="{JOB}"}}'})["data"]
            assert all("symbol" in s for s in series), (name, series[:3])

        # --- the alert rules evaluate healthy on real data, none firing on a healthy capture
        rules = prom.wait_for_rules()
        assert rules and all(r["health"] == "ok" for r in rules), rules
        firing = [a for a in prom.api("alerts")["data"]["alerts"] if a["state"] == "firing"]
        assert not firing, firing
        print(f"\nrecv_rate_tps={rates} latency_p99={_by(lat, 'symbol')} latency_count={counts} "
              f"cvd_scale_median={_by(scale, 'symbol')} floor_hit={_by(hit, 'symbol')} "
              f"reconnects {reconnects_before} -> {_one(after)} age_cuts={sim.stats['age_cuts']} "
              f"empty dashboard panels={empty}")

        # --- stop the capture: the target goes down and HarvesterDown becomes pending
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, capture_log.read_text(errors="replace")[-3000:]
        prom.wait_for(f'up{{job="{JOB}"}}', lambda v: list(v.values()) == [0.0], timeout=15)
        deadline = time.monotonic() + 15
        while True:
            alerts = prom.api("alerts")["data"]["alerts"]
            down = [a for a in alerts if a["labels"]["alertname"] == "HarvesterDown"]
            if down:
                break
            assert time.monotonic() < deadline, alerts
            time.sleep(0.5)
        assert down[0]["state"] == "pending" and down[0]["labels"]["severity"] == "critical"
