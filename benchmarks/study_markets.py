"""The signal study on the simulator's three markets and on the real recordings: prints the
Markdown summaries quoted in docs/research.md.

    .venv/bin/python benchmarks/study_markets.py [--minutes 60] [--seed 7]
"""

from __future__ import annotations

import argparse
import tempfile

from ofi_cvd_harvest.research.run import run_study
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.signals.derive import derive_all, write_kind
from ofi_cvd_harvest.sim.market import StudyMode
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest_tests.research.simstudy import DAY, simulated_partition
from ofi_cvd_harvest_tests.signals import realdata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    for name, study in (("default", None), ("planted 10 s", StudyMode(planted_sec=10)),
                        ("null", StudyMode(null_market=True))):
        st = simulated_partition(tempfile.mkdtemp(), "BTCUSDT", args.minutes, study, seed=args.seed)
        print(f"## {name} market, {args.minutes:g} min, seed {args.seed}\n")
        print(run_study(st, DAY, "BTCUSDT").markdown + "\n")
    if not realdata.available():
        return
    for sym in ("BTCUSDT", "ETHUSDT"):
        st = Storage(tempfile.mkdtemp())
        trades, book = realdata.convert(sym)
        sy.write_raw(st, sym, "agg_trade", trades)
        sy.write_raw(st, sym, "book", book)
        for day in ("2024-07-18", "2024-07-19"):
            for kind, df in derive_all(st, Settings(), day, sym).items():
                write_kind(st, day, sym, kind, df)
        for day in ("2024-07-18", "2024-07-19"):
            print(f"## real {sym} {day}\n")
            print(run_study(st, day, sym).markdown + "\n")


if __name__ == "__main__":
    main()
