"""Metrics from the first second (docs/monitoring.md): a capture pointed at a closed port (it
never connects) already exports every series at 0 for each known label value, counts its failed
connection attempts and reports a last-message age that grows from start-up -- so
``increase()`` alerts see the first event and ``HarvesterStreamStale`` fires."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.frames import FRAME_ERROR_KINDS
from ofi_cvd_harvest.monitoring import metrics
from ofi_cvd_harvest.monitoring.live_cvd import SIGNAL_TYPES

from ..procs import free_port, reap
from .promtools import http_get

ROOT = Path(__file__).resolve().parents[2]
SYMS = ("BTCUSDT", "ETHUSDT")
KNOWN = {"symbol": SYMS, "table": tuple(schemas.RAW_SCHEMAS), "endpoint": ("market", "public"),
         "kind": FRAME_ERROR_KINDS, "stream": metrics.MESSAGE_STREAMS, "type": SIGNAL_TYPES}
# NaN / absent until the CVD engine has warmed up
LATER = {"cvd_scale_median", "cvd_floor_hit_rate", "signal_z"}


def families() -> dict[str, MetricWrapperBase]:
    return {m._name: m for m in vars(metrics).values()
            if isinstance(m, MetricWrapperBase) and m._labelnames and m._name not in LATER}


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for line in body.splitlines():
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def children(name: str, labelnames: tuple[str, ...]) -> list[frozenset]:
    combos = [frozenset()]
    for ln in labelnames:
        combos = [c | {(ln, v)} for c in combos for v in KNOWN[ln]]
    return combos


def test_a_capture_that_never_connects_exports_everything_from_the_first_second(tmp_path):
    closed = free_port()          # nothing listens there: every connection attempt fails
    port = free_port()
    cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", ",".join(SYMS),
           "--run-seconds", "9", "--data-dir", str(tmp_path / "data"),
           "--artifacts-dir", str(tmp_path / "art"),
           "--ws-base-url", f"ws://127.0.0.1:{closed}",
           "--rest-base-url", f"http://127.0.0.1:{closed}", "--prometheus-port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = None
        deadline = time.time() + 30
        while first is None and time.time() < deadline:
            try:
                first = samples(http_get(f"http://127.0.0.1:{port}/metrics", 2).decode())
            except OSError:
                time.sleep(0.1)
        assert first is not None, "metrics endpoint never came up"
        t_first = time.time()
        time.sleep(3.0)
        second = samples(http_get(f"http://127.0.0.1:{port}/metrics", 2).decode())
        t_second = time.time()
        out, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == 0, err[-2000:]

    # every labelled family, every known label value, from the first scrape on
    fams = families()
    assert {"ws_connect_failures", "decode_errors", "data_rows", "write_errors",   # (_total)
            "healed_trades", "book_resyncs", "last_message_age_seconds"} <= set(fams)
    for name, fam in fams.items():
        kind = "counter" if isinstance(fam, Counter) else (
            "histogram" if isinstance(fam, Histogram) else "gauge")
        for labels in children(name, fam._labelnames):
            if kind == "counter":
                key = (name + "_total", labels)
            elif kind == "histogram":
                key = (name + "_count", labels)
            else:
                key = (name, labels)
            assert key in first, f"{key} missing at start-up"
            if name not in ("ws_connect_failures", "last_message_age_seconds"):
                assert first[key] == 0.0 and second[key] == 0.0, key

    # failed attempts count, on both endpoints, and keep counting
    for ep in ("market", "public"):
        key = ("ws_connect_failures_total", frozenset({("endpoint", ep)}))
        assert second[key] > first[key] and second[key] >= 2, (first[key], second[key])
    # the age grows from start-up (never a message): stale without any message at all
    for sym in SYMS:
        for stream in metrics.MESSAGE_STREAMS:
            key = ("last_message_age_seconds", frozenset({("symbol", sym), ("stream", stream)}))
            grown = second[key] - first[key]
            assert 1.5 <= grown <= (t_second - t_first) + 1.5, (key, first[key], second[key])
    assert second[("capture_up", frozenset())] == 1.0
