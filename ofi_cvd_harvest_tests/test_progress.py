"""progress.py: done/total, rate and ETA; redrawn in place on a terminal (and wiped before other
output), plain lines otherwise; and ``derive`` showing it in a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from ofi_cvd_harvest.progress import Progress
from ofi_cvd_harvest_tests.orchestration.rawfixtures import write_raw

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_plain_lines_with_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    p = Progress(4, label="derive", stream=out, tty=False, clock=clock)
    p.plain_every_sec = 0
    for i, name in enumerate(p.each(["a", "b", "c", "d"])):
        clock.t += 2.0              # each item takes 2 s
    lines = out.getvalue().splitlines()
    assert lines[0] == "progress: derive: 1/4 partitions (25 %), 0.50/s, ETA 6 s, last a"
    assert lines[-1] == "progress: derive: 4/4 partitions (100 %), 0.50/s, took 8 s, last d"
    assert "\r" not in out.getvalue()


def test_plain_lines_are_throttled_but_the_last_is_shown():
    out, clock = io.StringIO(), Clock()
    p = Progress(100, stream=out, tty=False, clock=clock)
    for _ in p.each(range(100)):
        clock.t += 0.5              # 50 s in all, one line per 10 s at most
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 7 and lines[-1].startswith("progress: 100/100")


def test_tty_line_redrawn_in_place_and_wiped_before_output(monkeypatch):
    term, clock = io.StringIO(), Clock()
    fake_stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", fake_stdout)
    p = Progress(2, label="validate", what="evaluations", stream=term, tty=True, clock=clock)
    for name in p.each(["x", "y"]):
        clock.t += 3
        print(f"result {name}")            # goes through the wiping wrapper
    assert sys.stdout is fake_stdout        # restored
    shown = term.getvalue()
    assert shown.count("\r") >= 4 and "validate: 0/2 evaluations (0 %), elapsed 0 s, now x" in shown
    assert "1/2 evaluations (50 %), 0.33/s, ETA 3 s" in shown
    assert shown.endswith("validate: 2/2 evaluations (100 %), 0.33/s, took 6 s\n")
    assert fake_stdout.getvalue() == "result x\nresult y\n"
    # before each result line was printed, the progress line was blanked with spaces
    first_wipe = shown.index("\r" + " " * len("validate: 0/2 evaluations (0 %), elapsed 0 s, now x") + "\r")
    assert first_wipe > 0


def test_derive_in_a_real_terminal_and_in_a_pipe(tmp_path):
    data = tmp_path / "data"
    for sym in ("BTCUSDT", "ETHUSDT"):
        write_raw(data, "2024-07-19", sym, minutes=3)
    cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "derive", "--data-dir", str(data),
           "--symbols", "BTCUSDT,ETHUSDT", "--dry-run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    piped = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "progress: derive: 2/2 partitions (100 %)" in piped.stderr and "\r" not in piped.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    buf = b""
    while True:
        r, _, _ = select.select([master], [], [], 300)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:          # EIO: the child closed the terminal
            break
        if not chunk:
            break
        buf += chunk
    proc.wait(timeout=60)
    os.close(master)
    text = buf.decode()
    assert "\rderive: 0/2 partitions (0 %), elapsed" in text and "now 2024-07-19 BTCUSDT" in text
    assert "derive: 2/2 partitions (100 %)" in text and "progress:" not in text
    # the command's own lines are intact (each begins after a wiped progress line)
    assert "2024-07-19 BTCUSDT: prices=" in text and "2024-07-19 ETHUSDT: prices=" in text
