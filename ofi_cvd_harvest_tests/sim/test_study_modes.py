"""Simulator study markets (docs/research.md): the default market is unchanged byte for byte,
the options parse and reject nonsense, and the study markets really are what they claim."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ofi_cvd_harvest.cli import main
from ofi_cvd_harvest.sim.market import StudyMode, SyntheticMarket

SYMS = ("BTCUSDT", "ETHUSDT", "XYZUSDT")
START = 1_738_540_800_000
# sha256 of 3 minutes of every stream of the default market, seed 3, computed with the code
# before the study options existed (commit 08b6793): the default must stay byte-identical
DEFAULT_DIGEST = "619d799b3d818a9c4e7fa07a68a016b42eb9f33cae2175c62a2e8dee463d8259"


def digest(study: StudyMode | None) -> str:
    m = SyntheticMarket(SYMS, seed=3, start_ms=START, study=study)
    streams = frozenset(f"{s.lower()}@{k}" for s in SYMS
                        for k in ("aggTrade", "bookTicker", "depth@100ms", "depth10@100ms"))
    h = hashlib.sha256()
    now = m.start_ms
    for _ in range(9):
        now += 20_000
        for msg in m.poll(now, streams):
            h.update(msg.raw if isinstance(msg.raw, bytes) else str(msg.raw).encode())
    return h.hexdigest()


def test_default_market_is_byte_identical():
    assert digest(None) == DEFAULT_DIGEST


def test_study_markets_differ_and_are_deterministic():
    a, b = digest(StudyMode(planted_sec=10)), digest(StudyMode(null_market=True))
    assert len({a, b, DEFAULT_DIGEST}) == 3
    assert digest(StudyMode(null_market=True)) == b


@pytest.mark.parametrize("kwargs", [{}, {"planted_sec": 5, "null_market": True},
                                    {"planted_sec": 0}, {"planted_sec": float("nan")},
                                    {"planted_sec": -3}, {"planted_sec": 1e9}])
def test_study_mode_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        StudyMode(**kwargs)


@pytest.mark.parametrize("extra", [["--planted-signal", "0"], ["--planted-signal", "x"],
                                   ["--planted-signal", "5", "--null-market"]])
def test_simulate_rejects_bad_study_options(extra, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *extra])
    assert exc.value.code == 2


def test_simulate_rejects_study_with_replay(capsys):
    assert main(["simulate", "--replay", "x", "--null-market", "--run-seconds", "1"]) == 2
    assert "--replay" in capsys.readouterr().err


def _trade_prices_and_sides(study):
    m = SyntheticMarket(("BTCUSDT",), seed=5, start_ms=START, study=study)
    m.poll(START + 600_000, frozenset(["btcusdt@aggTrade"]))
    cols = m.trade_columns("BTCUSDT")
    return np.asarray(cols["px"], float), np.where(np.asarray(cols["m"], bool), -1.0, 1.0)


def test_null_market_prices_ignore_the_trade_side():
    """Default market: a buy prints higher than the previous trade more often than not (it
    takes the ask). Null market: the price step is independent of the side."""
    def corr(study):
        p, side = _trade_prices_and_sides(study)
        return float(np.corrcoef(np.diff(p), side[1:])[0, 1])
    assert corr(None) > 0.2
    assert abs(corr(StudyMode(null_market=True))) < 0.03


@pytest.mark.parametrize("option", [["--null-market"], ["--planted-signal", "10"]])
def test_simulate_serves_a_study_market(option):
    """The real server with a study market: starts, serves REST, stops after --run-seconds."""
    import json
    import subprocess
    import sys
    import urllib.request
    proc = subprocess.Popen([sys.executable, "-m", "ofi_cvd_harvest.cli", "simulate", "--port", "0",
                             "--symbols", "BTCUSDT", "--run-seconds", "3", *option],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        rest = lines[1].strip().split("=", 1)[1]
        with urllib.request.urlopen(f"{rest}/fapi/v1/depth?symbol=BTCUSDT&limit=5", timeout=5) as r:
            book = json.loads(r.read())
        assert len(book["bids"]) == 5 and float(book["bids"][0][0]) < float(book["asks"][0][0])
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
