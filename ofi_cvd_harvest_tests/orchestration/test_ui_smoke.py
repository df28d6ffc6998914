"""Headless-browser smoke test: ``ofi-cvd-harvest-ui`` starts ``dagster dev`` and the UI's asset
graph for the code location shows every asset; stopping the launcher stops the whole tree."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from ofi_cvd_harvest.orchestration.ui import prepare_dagster_home, restore_signals
from ..procs import free_port as _free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ASSETS = ["prices", "cvd", "ofi", "fusion", "events", "raw_agg_trade", "raw_book", "raw_ops"]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"launcher exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} not up after {timeout} s")


def _dom_text(url: str, tmp: Path) -> str:
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'chrome'}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90)
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", out.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_prepare_dagster_home_copies_instance_config_once(tmp_path):
    home = prepare_dagster_home(tmp_path / "home")
    assert (home / "dagster.yaml").read_text() == (ROOT / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # user's edit is kept
    prepare_dagster_home(home)
    assert (home / "dagster.yaml").read_text().startswith("telemetry")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)")
def test_ui_shows_asset_graph(tmp_path):
    port = _free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "PROMETHEUS_PORT": "0"}
    env.pop("OFI_CVD_CAPTURE_AUTOSTART", None)
    log = open(tmp_path / "ui.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ofi_cvd_harvest.orchestration.ui", "--no-simulator",
         "--no-autostart", "--port", str(port), "--dagster-home", str(tmp_path / "dagster_home")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=restore_signals)
    tree: list[psutil.Process] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", proc)
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("dagster" in " ".join(p.cmdline()) for p in tree)
        assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
        text = _dom_text(f"http://127.0.0.1:{port}/locations/ofi_cvd_harvest.definitions/"
                         "asset-groups/derived", tmp_path)
        missing = [a for a in ASSETS if not re.search(rf"\b{a}\b", text)]
        assert not missing, f"asset graph lacks {missing}: {text[:2000]}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the launcher stops dagster dev's process group
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        deadline = time.time() + 15
        while time.time() < deadline and any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                             for p in tree):
            time.sleep(0.5)
        leftover = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for p in leftover:  # never leave processes behind, but fail the test
            p.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "ui.log").read_text()[-3000:]
    assert not leftover, f"processes left running: {[p.cmdline()[:3] for p in leftover]}"
