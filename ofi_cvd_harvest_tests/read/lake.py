"""A small lake built the real way: raw files as the capture writes them, derived through the DQ
gate. Two dates × two symbols published; one partition published and then re-derived from
damaged raw data (a minute of trades deleted) so its newer version sits in quarantine beside the
published one; one date only in quarantine (with the same kind of hole)."""

from __future__ import annotations

from pathlib import Path

from ofi_cvd_harvest.gate.run import PUBLISHED, QUARANTINED, gate_partition
from ofi_cvd_harvest.settings import load_settings
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest_tests.orchestration.rawfixtures import write_raw

DATES = ("2024-07-18", "2024-07-19")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
BOTH = ("2024-07-19", "BTCUSDT")          # published, and a newer version quarantined
ONLY_Q = ("2024-07-20", "ETHUSDT")        # only in quarantine


def build(root: Path) -> dict:
    settings = load_settings(env={})
    storage = Storage(root)
    for d in DATES:
        for s in SYMBOLS:
            write_raw(root, d, s, minutes=65, start_minute=60, seed=1 + DATES.index(d) * 2 + SYMBOLS.index(s))
            out = gate_partition(storage, settings, d, s, run="test")
            assert out.status == PUBLISHED, out.summary()
    # a hole of a few minutes in the trades: the re-derivation fails and goes to quarantine
    trades = sorted((root / f"raw/date={BOTH[0]}/symbol={BOTH[1]}/stream=agg_trade").glob("*.parquet"))
    for p in trades[20:25]:
        p.unlink()
    out = gate_partition(storage, settings, *BOTH, run="test")
    assert out.status == QUARANTINED, out.summary()
    write_raw(root, *ONLY_Q, minutes=12, start_minute=60)
    for p in sorted((root / f"raw/date={ONLY_Q[0]}/symbol={ONLY_Q[1]}/stream=agg_trade").glob("*.parquet"))[4:7]:
        p.unlink()
    out = gate_partition(storage, settings, *ONLY_Q, run="test")
    assert out.status == QUARANTINED, out.summary()
    return {"root": root}
