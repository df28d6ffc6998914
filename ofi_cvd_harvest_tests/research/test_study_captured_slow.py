"""The planted signal found end to end: the embedded exchange serves the planted market over
real WebSockets, the capture records it, the derivation and the study run on the files."""

from __future__ import annotations

import polars as pl
import pytest

from ofi_cvd_harvest.research.run import run_study
from ofi_cvd_harvest.signals.derive import derive_all, write_kind
from ofi_cvd_harvest.sim.market import StudyMode, SyntheticMarket
from ofi_cvd_harvest.storage.fs import Storage

MINUTES = 20
SPEED = 10


@pytest.mark.slow
def test_captured_planted_market_shows_its_signal(tmp_path):
    """20 simulated minutes at speed 10 (~2 min wall)."""
    from ofi_cvd_harvest.capture.runner import run_capture_sync
    from ofi_cvd_harvest.settings import load_settings
    from ofi_cvd_harvest.sim.server import SimulatorThread

    market = SyntheticMarket(["BTCUSDT"], seed=7, speed=SPEED, study=StudyMode(planted_sec=10))
    with SimulatorThread(["BTCUSDT"], seed=7, speed=SPEED, source=market) as sim:
        settings = load_settings(env={}, symbols=("BTCUSDT",), data_dir=tmp_path / "data",
                                 artifacts_dir=tmp_path / "art", ws_base_url=sim.ws_url,
                                 rest_base_url=sim.rest_url, prometheus_port=0)
        run_capture_sync(settings, run_seconds=MINUTES * 60 / SPEED)
    st = Storage(settings.data_dir)
    dates = sorted({p.split("date=")[1][:10] for p in st.list_files("raw")})
    for date in dates:
        for kind, df in derive_all(st, settings, date, "BTCUSDT").items():
            write_kind(st, date, "BTCUSDT", kind, df)
    studies = [run_study(st, d, "BTCUSDT").table for d in dates]
    ic = max((s.filter((pl.col("measure") == "ic") & (pl.col("signal") == "ofi_z")
                       & (pl.col("regime") == "all") & (pl.col("horizon_sec") == 10)).row(0, named=True)
              for s in studies), key=lambda r: r["n"])
    print(f"captured planted market: IC(ofi_z, 10 s) = {ic}")
    assert ic["n"] > 0.5 * MINUTES * 60 and ic["t_stat"] > 3, ic
