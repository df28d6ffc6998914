"""Hypothesis properties of whole-partition derivation on small random raw data."""

from __future__ import annotations

import tempfile

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals import derive as D
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage

from .helpers import D0, DAY, SYM, book_table, trades_table

trade_steps = st.lists(st.tuples(st.integers(0, 9000), st.floats(0.001, 20), st.booleans(),
                                 st.integers(-3, 3), st.sampled_from(["ws", "ws", "rest"])),
                       min_size=1, max_size=120)


def raw_tables(steps, start):
    t = start + np.cumsum([s[0] for s in steps])
    price = 100 + np.cumsum([s[3] for s in steps]) * 0.1
    trades = trades_table([{"id": i + 1, "t": int(ti), "price": float(p), "qty": s[1], "buy": s[2],
                            "source": s[4]} for i, (ti, p, s) in enumerate(zip(t, price, steps))])
    book = book_table([{"E": int(ti), "u": 10 * (i + 1),
                        "bids": [(float(p) - 0.1, s[1]), (float(p) - 0.2, 1.0)],
                        "asks": [(float(p), 2.0)], "gap": i % 17 == 5}
                       for i, (ti, p, s) in enumerate(zip(t, price, steps))])
    return trades, book


@given(trade_steps, st.integers(-300_000, 0), st.sampled_from(["delta", "level"]),
       st.sampled_from(["hybrid", "ewma", "mad"]))
@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_partition_properties(steps, offset, z_mode, scale_mode):
    s = Settings().replace(signals=Settings().signals.__class__(z_mode=z_mode, scale_mode=scale_mode,
                                                                 warmup_rows=3))
    trades, book = raw_tables(steps, D0 + offset)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        split, one = Storage(a), Storage(b)
        sy.write_raw(split, SYM, "agg_trade", trades)
        sy.write_raw(split, SYM, "book", book)
        for stream, table in (("agg_trade", trades), ("book", book)):
            one.write_parquet(layout.raw_file(DAY, SYM, stream, 0, 0), table)
        first = D.derive_all(split, s, DAY, SYM)
        again = D.derive_all(split, s, DAY, SYM)
        other = D.derive_all(one, s, DAY, SYM)
    for kind in schemas.DERIVED_KINDS:
        assert first[kind].equals(again[kind])            # rebuild: identical values
        assert first[kind].equals(other[kind])            # one date dir or two: identical
    c = first["cvd"]
    assert np.allclose(c["cvd"].to_numpy(), np.cumsum(c["delta"].to_numpy()), atol=1e-9)
    assert (c["z_cvd"].drop_nulls().abs() <= s.signals.winsor_limit).all()
    assert (first["fusion"]["score_z"].drop_nulls().abs() <= s.signals.winsor_limit).all()
    raw = pl.from_arrow(trades)
    evt = pl.when(pl.col("source") == "rest").then(pl.col("trade_ts_ms")).otherwise(pl.col("event_ts_ms"))
    assert len(first["prices"]) == len(c) == raw.filter(evt >= D0).height
    assert first["prices"]["agg_trade_id"].is_sorted()
