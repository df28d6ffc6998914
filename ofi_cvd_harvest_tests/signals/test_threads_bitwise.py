"""Derived tables are bit-identical with any number of polars threads (docs/signals.md).

Each thread count runs in its own process (``POLARS_MAX_THREADS`` is read once, when polars
starts), derives the same partitions and saves the five frames; the frames are then compared
bit for bit — float columns by their IEEE-754 bit patterns, so even a last-digit difference or
a −0.0 against 0.0 fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.storage.layout import day_bounds_ms

DATES = ("2025-03-01", "2025-03-02")
SYMBOL = "BTCUSDT"
THREADS = (1, 2, 4)
CHILD = """
import sys
from pathlib import Path
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.signals.derive import derive_all
import polars as pl
assert pl.thread_pool_size() == int(sys.argv[3]), pl.thread_pool_size()
st, out = Storage(sys.argv[1]), Path(sys.argv[2])
for date in sys.argv[4:]:
    for kind, df in derive_all(st, Settings(), date, "BTCUSDT").items():
        df.write_ipc(out / f"{date}_{kind}.arrow")
"""


def _synthesise(root: Path) -> None:
    """Two dates around one midnight: 40 min before and 40 min after, busy enough that polars
    splits the work into several chunks (~50 trades/s, a 10-level book every 100 ms)."""
    st = Storage(root)
    d1 = day_bounds_ms(DATES[1])[0]
    start, end = d1 - 40 * 60_000, d1 + 40 * 60_000
    sy.write_raw(st, SYMBOL, "agg_trade", sy.synth_trades(start, end, 240_000, seed=3))
    sy.write_raw(st, SYMBOL, "book", sy.synth_book(start, end, seed=3, gap_rate=1e-3))


def bits(s: pl.Series) -> list:
    """A column as something whose equality is bit equality (floats by their bit patterns)."""
    if s.dtype in (pl.Float32, pl.Float64):
        a = s.to_numpy()
        return [s.is_null().to_list(), a.view(np.uint64 if a.itemsize == 8 else np.uint32).tolist()]
    return s.to_list()


def test_bit_identical_with_1_2_4_polars_threads(tmp_path):
    data = tmp_path / "data"
    _synthesise(data)
    outs = {}
    for n in THREADS:
        out = tmp_path / f"threads{n}"
        out.mkdir()
        env = {**os.environ, "POLARS_MAX_THREADS": str(n)}
        subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), str(n), *DATES],
                       check=True, env=env, timeout=600)
        outs[n] = out
    compared = 0
    for date in DATES:
        for kind in schemas.DERIVED_KINDS:
            frames = {n: pl.read_ipc(outs[n] / f"{date}_{kind}.arrow") for n in THREADS}
            ref = frames[THREADS[0]]
            assert len(ref) > 0, (date, kind)
            for n in THREADS[1:]:
                assert frames[n].schema == ref.schema
                for col in ref.columns:
                    same = bits(frames[n][col]) == bits(ref[col])
                    assert same, f"{date} {kind}.{col}: {n} threads differ from {THREADS[0]}"
                compared += 1
    assert compared == len(DATES) * len(schemas.DERIVED_KINDS) * (len(THREADS) - 1)
