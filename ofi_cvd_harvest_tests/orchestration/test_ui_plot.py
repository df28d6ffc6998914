"""The day plot in the Dagster UI, in a real browser: a partition derived through the gate
carries a ``plot`` markdown metadata entry; ``dagster-webserver`` serves it, headless Chromium
(driven over the DevTools protocol, cdp.py) opens the asset's events page, clicks the entry's
"Show Markdown" and finds the embedded PNG decoded at its size; a screenshot is kept."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from ..procs import free_port
from .rawfixtures import write_raw

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]
DATE, SYMBOL = "2024-07-19", "BTCUSDT"
KINDS = ["prices", "ofi", "cvd", "fusion", "events"]

CLICK = """(() => {
  const row = [...document.querySelectorAll('tr')].find(r => r.cells.length && r.cells[0].textContent.trim() === 'plot');
  const a = row && [...row.querySelectorAll('a,button')].find(e => e.textContent.includes('Show Markdown'));
  if (!a) return false; a.click(); return true; })()"""
IMAGE = """(() => {
  const i = [...document.querySelectorAll('img')].find(i => i.src.startsWith('data:image/png;base64,'));
  return i && i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight, i.alt,
    Math.round(i.getBoundingClientRect().width)] : false; })()"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)")
def test_materialisation_plot_shows_in_the_ui(tmp_path, monkeypatch):
    from ofi_cvd_harvest.orchestration.assets import derived_assets
    from ofi_cvd_harvest.orchestration.partitions import register_symbols
    from ofi_cvd_harvest.orchestration.raw_assets import raw_specs
    from ofi_cvd_harvest.orchestration.resources import HarvestSettings

    from .cdp import Browser

    data, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    write_raw(data, DATE, SYMBOL, minutes=65, start_minute=60)
    for k, v in {"DATA_DIR": str(data), "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
                 "DAGSTER_HOME": str(home), "PROMETHEUS_PORT": "0", "SYMBOLS": SYMBOL}.items():
        monkeypatch.setenv(k, v)
    with dg.DagsterInstance.get() as instance:
        register_symbols(instance, [SYMBOL])
        res = dg.materialize([*raw_specs, *derived_assets], partition_key=f"{DATE}|{SYMBOL}",
                             instance=instance, selection=KINDS,
                             resources={"harvest": HarvestSettings()})
        assert res.success
        mats = {m.asset_key.to_user_string(): m.metadata
                for m in res.asset_materializations_for_node("derived_tables")}
    assert sorted(mats) == sorted(KINDS)
    md = mats["prices"]["plot"].value
    assert md.startswith(f"![{SYMBOL} {DATE}](data:image/png;base64,") and len(md) < 200_000

    port = free_port()
    log = open(tmp_path / "web.log", "w")
    web = subprocess.Popen([str(Path(sys.executable).with_name("dagster-webserver")), "-m",
                            "ofi_cvd_harvest.definitions", "-h", "127.0.0.1", "-p", str(port)],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    browser = None
    try:
        deadline = time.time() + 120
        while True:
            assert web.poll() is None, (tmp_path / "web.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, "dagster-webserver did not come up"
                time.sleep(0.5)
        browser = Browser(CHROMIUM, tmp_path / "chrome")
        shot = tmp_path / "ui_plot.png"

        async def steps(call):
            await call("Page.enable")
            await call("Page.navigate", url=f"http://127.0.0.1:{port}/assets/prices?view=events"
                                            f"&partition={DATE}%7C{SYMBOL}")
            await Browser.wait_for(call, CLICK, 90)
            found = await Browser.wait_for(call, IMAGE, 30)
            await Browser.screenshot(call, shot)
            return found

        width, height, alt, shown = browser.run(steps)
        assert (width, height, alt) == (720, 450, f"{SYMBOL} {DATE}") and shown > 300
        img = PIL.open(io.BytesIO(shot.read_bytes()))
        assert img.size[0] >= 1000 and len(img.convert("RGB").getcolors(1 << 20) or []) > 50
    finally:
        if browser is not None:
            browser.close()
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            try:
                web.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
                web.wait()
        log.close()
