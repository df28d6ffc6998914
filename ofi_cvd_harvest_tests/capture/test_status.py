"""Status lines (capture/status.py): real captures against the simulator log one line per
``status_interval_sec`` with every symbol's figures, an hourly summary (shortened here), and the
same lines reach the Dagster run log of ``capture_job``."""

from __future__ import annotations

import logging
import re

import dagster as dg
import numpy as np
import pytest

from ofi_cvd_harvest.capture import status as st
from ofi_cvd_harvest.capture.runner import run_capture_sync

from .rawcheck import capture_settings

SYMS = ("BTCUSDT", "ETHUSDT")
SEGMENT = re.compile(r"(?P<sym>[A-Z0-9]+) trades (?P<tps>[\d.]+)/s book (?P<bps>[\d.]+)/s "
                     r"p99 (?P<p99>-|\d+ ms) gaps open (?P<open>\d+) healed (?P<healed>\d+) "
                     r"files (?P<files>\d+) \((?P<size>[\d.]+ [kM]B)\) dedup (?P<dedup>\d+) "
                     r"lag (?P<lag>-|[\d.]+ s)")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_p99_of_the_histogram_is_nearest_rank():
    rng = np.random.default_rng(3)
    vals = rng.integers(0, 190, 10_001).tolist()
    assert st.p99(st._bin(vals)) == int(np.percentile(vals, 99, method="inverted_cdf"))
    assert st.p99(st._bin([])) is None
    # clock skew (negative) and stalls beyond the last edge stay countable
    assert st.p99(st._bin([-5] * 100)) == 0
    assert st.p99(st._bin([10] * 98 + [10**9] * 2)) == 60_000
    assert st.p99(st._bin([5] * 50 + [1234] * 50)) == 1230     # 10 ms bins above 200 ms


def test_status_lines_at_the_interval_from_a_real_capture(simulator, tmp_path, monkeypatch):
    monkeypatch.setattr(st.StatusReporter, "summary_every_sec", 4.0)
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, status_interval_sec=1.5)
    log = logging.getLogger("test_status_capture")
    log.setLevel(logging.INFO)
    log.propagate = False
    h = _Collect()
    log.addHandler(h)
    try:
        summary = run_capture_sync(s, run_seconds=7.2, log=log)
    finally:
        log.removeHandler(h)
    lines = [m for m in h.lines if m.startswith("status ")]
    summaries = [m for m in h.lines if m.startswith("summary of the last")]
    assert 3 <= len(lines) <= 5, h.lines          # 7.2 s / 1.5 s: four lines, give or take a tick
    assert 1 <= len(summaries) <= 2, h.lines
    trades_seen = 0
    for line in lines:
        segs = {m["sym"]: m for m in SEGMENT.finditer(line)}
        assert set(segs) == set(SYMS), line
        assert "total files" in line
    last = {m["sym"]: m for m in SEGMENT.finditer(lines[-1])}
    for sym in SYMS:
        m = last[sym]
        assert float(m["tps"]) > 0 and float(m["bps"]) > 0, lines[-1]
        assert m["p99"] != "-" and m["lag"] != "-"
        trades_seen += float(m["tps"])
    # files are written every 2 s (parquet_rotate_sec): some line reports them with their bytes
    assert any(int(m["files"]) > 0 and m["size"] != "0 kB"
               for line in lines for m in SEGMENT.finditer(line))
    for sym in SYMS:
        assert f"{sym} trades " in summaries[0] and "gaps detected" in summaries[0]
        assert summary.symbols[sym].trades_ws > 0
    # the same lines are in the capture's own run log file
    text = open(summary.log_path, encoding="utf-8").read()
    assert text.count(" status ") >= len(lines)


def test_status_lines_in_the_dagster_run_log(tmp_path, monkeypatch, simulator_factory):
    from ofi_cvd_harvest.definitions import defs
    sim = simulator_factory(("BTCUSDT",), seed=5)
    for k, v in {"WS_BASE_URL": sim.ws_url, "REST_BASE_URL": sim.rest_url,
                 "DATA_DIR": str(tmp_path / "data"), "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
                 "PROMETHEUS_PORT": "0", "PARQUET_ROTATE_SEC": "2", "SYMBOLS": "BTCUSDT",
                 "STATUS_INTERVAL_SEC": "1"}.items():
        monkeypatch.setenv(k, v)
    with dg.instance_for_test() as instance:
        result = defs.get_job_def("capture_job").execute_in_process(
            run_config={"ops": {"capture": {"config": {"run_seconds": 4.5}}}}, instance=instance)
        assert result.success
        logs = [r.user_message for r in instance.all_logs(result.run_id)]
    lines = [m for m in logs if m.startswith("status ")]
    assert 2 <= len(lines) <= 6, logs
    assert all(SEGMENT.search(m) and "BTCUSDT" in m for m in lines)


def test_setting_is_validated():
    from ofi_cvd_harvest.settings import SettingsError, load_settings
    with pytest.raises(SettingsError, match="status_interval_sec"):
        load_settings(env={"STATUS_INTERVAL_SEC": "0"})
    assert load_settings(env={}).status_interval_sec == 60.0


class _Cap:
    """What StatusReporter reads of a capture: per-symbol states with their latency lists."""

    def __init__(self, symbols):
        from types import SimpleNamespace
        self.states = {s: SimpleNamespace(lat=[], ws_count=0, rest_count=0, book_rows=0, dups=0,
                                          book_gaps=0, last_event_ms=None) for s in symbols}
        self.healer = SimpleNamespace(gaps_detected={}, open_gaps=lambda sym=None: 0)
        self.writer = SimpleNamespace(files_written=0, files=[])
        self.storage = SimpleNamespace(local=False)
        self.ops = SimpleNamespace(counts={})
        self.log = logging.getLogger("test_status_unit")


def test_p99_per_symbol_over_ticks_swaps_and_late_symbols():
    """Latencies taken at every tick, the lists swapped between ticks (as the exporter does), a
    symbol without any and one that appears late: each line's p99 is the nearest-rank p99 of
    exactly that symbol's values of the interval (all below 200 ms: exact bins)."""
    rng = np.random.default_rng(7)
    cap = _Cap(["A", "B", "C"])
    rep = st.StatusReporter(cap, 3.0, 0.0)
    got: dict[str, list[int]] = {"A": [], "B": [], "C": [], "D": []}
    for sec in range(1, 10):
        if sec == 4:   # a symbol the capture starts to follow later
            cap.states["D"] = type(cap.states["A"])(**{**vars(cap.states["A"]), "lat": []})
        for sym, state in cap.states.items():
            if sym == "C":
                continue
            vals = rng.integers(-3, 199, int(rng.integers(0, 30))).tolist()
            half = len(vals) // 2
            state.lat.extend(vals[:half])
            rep.tick(sec - 0.5)                 # a tick between the second's arrivals
            state.lat.extend(vals[half:])
            got[sym] += vals
        rep.tick(float(sec))
        if sec % 3 == 0:
            figs = rep.last
            for sym in cap.states:
                want = (None if not got[sym] else
                        max(0, int(np.percentile(got[sym], 99, method="inverted_cdf"))))
                assert figs[sym]["p99_ms"] == want, (sec, sym)
                got[sym] = []
        for state in cap.states.values():       # the exporter's swap, once a second
            state.lat = []
    assert not rep._failed
