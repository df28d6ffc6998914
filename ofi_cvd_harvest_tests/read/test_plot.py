"""``ofi-cvd-harvest plot``: a real PNG of sensible size and content from the lake of lake.py,
windows, and hostile arguments."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

from ofi_cvd_harvest import plot  # noqa: E402
from ofi_cvd_harvest.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "plot", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _colours(png: bytes) -> int:
    img = PIL.open(io.BytesIO(png)).convert("RGB")
    return len(img.getcolors(maxcolors=1 << 20) or [])


def test_plot_cli_writes_a_real_png(data, tmp_path):
    out = tmp_path / "day.png"
    p = _cli("--data-dir", str(data), "--date", "2024-07-18", "--symbol", "ethusdt", "--out", str(out))
    assert p.returncode == 0, p.stderr
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = PIL.open(out)
    assert img.size == (1600, 1000)
    assert 30_000 < len(png) < 3_000_000
    assert _colours(png) > 50            # lines, bands, markers, text: not a blank canvas
    small = tmp_path / "window.png"
    p = _cli("--data-dir", str(data), "--date", "2024-07-18", "--symbol", "ETHUSDT", "--from", "01:15",
             "--to", "01:45", "--width", "800", "--height", "500", "--out", str(small))
    assert p.returncode == 0, p.stderr
    assert PIL.open(small).size == (800, 500)


def test_plot_window_and_downsampling(data):
    day = plot.load(data, "2024-07-18", "BTCUSDT", "01:10", "01:40", bins=100)
    assert day["end_ms"] - day["start_ms"] == 30 * 60_000 and day["bin_ms"] == 18_000
    assert 0 < day["price"].height <= 100
    assert (day["price"]["lo"] <= day["price"]["last"]).all() and (day["price"]["last"] <= day["price"]["hi"]).all()
    assert day["price"]["n"].sum() == plot.read.scan(
        "prices", data_dir=data, symbols=["BTCUSDT"], start="2024-07-18", end="2024-07-18").filter(
        plot.pl.col("ts_ms").is_between(day["start_ms"], day["end_ms"] - 1)).collect().height
    whole = plot.load(data, "2024-07-18", "BTCUSDT", bins=200)   # default: the covered span
    assert whole["end_ms"] - whole["start_ms"] <= 70 * 60_000
    png = plot.render(whole, plot.thresholds_of(load_settings(env={})), width_px=720,
                      height_px=450, dpi=80, palette=True)
    assert PIL.open(io.BytesIO(png)).size == (720, 450) and len(png) < 150_000
    md = plot.markdown_image(png, "BTCUSDT 2024-07-18")
    assert md.startswith("![BTCUSDT 2024-07-18](data:image/png;base64,")
    assert base64.b64decode(md[md.index(",") + 1:-1]) == png


@pytest.mark.parametrize("args,code,message", [
    (["--date", "18-07-2024"], 2, "bad --date"),
    (["--date", "2024-07-18", "--from", "25:00"], 2, "--from"),
    (["--date", "2024-07-18", "--from", "noon"], 2, "HH:MM"),
    (["--date", "2024-07-18", "--from", "02:00", "--to", "01:00"], 2, "after"),
    (["--date", "2024-07-18", "--width", "5"], 2, "pixels"),
    (["--date", "2030-01-01"], 1, "no published prices"),
])
def test_plot_hostile_arguments(data, tmp_path, args, code, message):
    out = tmp_path / "x.png"
    p = _cli("--data-dir", str(data), "--symbol", "BTCUSDT", "--out", str(out), *args)
    assert p.returncode == code and message in p.stderr, (p.returncode, p.stderr)
    assert not out.exists()
