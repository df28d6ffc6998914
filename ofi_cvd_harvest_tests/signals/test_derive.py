"""Partition derivation: schemas, empty input, byte-identical rebuilds, warm-up across midnight
(stored as one date or two, capture start), no look-ahead, and the ``derive`` CLI."""

from __future__ import annotations

import functools
import hashlib

import orjson
import polars as pl
import pyarrow as pa
import pytest

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.cli import main as cli_main
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.signals import derive as D
from ofi_cvd_harvest.signals import synthetic as sy
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage

from .helpers import D0, DAY, PREV, SYM, ops_table

H = 3_600_000
S = Settings()


@functools.cache
def _market() -> tuple[pl.DataFrame, pl.DataFrame]:
    """One synthetic market (22:00 the day before → 02:00), sliced by the tests."""
    return (pl.from_arrow(sy.synth_trades(D0 - 8 * H, D0 + 2 * H, 100_000, seed=7)),
            pl.from_arrow(sy.synth_book(D0 - 2 * H, D0 + 2 * H, step_ms=250, seed=7, gap_rate=1e-3)))


def trades(start, end):
    df = _market()[0].filter((pl.col("event_ts_ms") >= start) & (pl.col("event_ts_ms") < end))
    return df.to_arrow().cast(schemas.AGG_TRADE)


def book(start, end):
    df = _market()[1].filter((pl.col("event_ts_ms") >= start) & (pl.col("event_ts_ms") < end))
    return df.to_arrow().cast(schemas.BOOK)


def store(root, start, end, *, one_date=None) -> Storage:
    st = Storage(root)
    for stream, table in (("agg_trade", trades(start, end)), ("book", book(start, end))):
        if one_date:   # everything in one date directory, in 10-minute files
            df = pl.from_arrow(table).with_columns((pl.col("recv_ts_ms") // 600_000).alias("_b"))
            for i, (_, part) in enumerate(df.group_by("_b", maintain_order=True)):
                st.write_parquet(layout.raw_file(one_date, SYM, stream, int(part["recv_ts_ms"][0]), i),
                                 part.drop("_b").to_arrow().cast(schemas.RAW_SCHEMAS[stream]))
        else:
            sy.write_raw(st, SYM, stream, table, rotate_ms=600_000)
    sy.write_raw(st, SYM, "ops", ops_table([{"recv": D0 + 1000, "type": "connect", "meta": '{"conn_id": 1}'},
                                            {"recv": D0 - 1000, "type": "connect"}]))
    return st


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return store(tmp_path_factory.mktemp("split"), D0 - 8 * H, D0 + H)


@pytest.fixture(scope="module")
def split_tables(split):
    return D.derive_all(split, S, DAY, SYM)


def test_schemas_exact(split_tables):
    assert list(split_tables) == list(schemas.DERIVED_KINDS)
    for kind, df in split_tables.items():
        assert df.to_arrow().cast(schemas.DERIVED_SCHEMAS[kind]).schema == schemas.DERIVED_SCHEMAS[kind]
        assert df.columns == schemas.DERIVED_SCHEMAS[kind].names
        assert len(df) > 0
    p, c = split_tables["prices"], split_tables["cvd"]
    assert p["agg_trade_id"].is_sorted() and p["agg_trade_id"].n_unique() == len(p)
    assert c["agg_trade_id"].to_list() == p["agg_trade_id"].to_list()
    assert (p["event_ts_ms"] >= D0).all() and (split_tables["ofi"]["ts_ms"] >= D0).all()
    assert set(c["regime"].unique()) <= {"A_H", "A_L", "Q_H", "Q_L", "warmup"}
    assert c["regime"][0] != "warmup"            # warmed up from the previous date
    assert c["z_cvd"].null_count() == 0          # no warm-up nulls at 00:00 either


def test_events_carry_category(split_tables):
    ev = split_tables["events"]
    cats = [orjson.loads(m)["category"] for m in ev["meta_json"]]
    assert cats.count("ops") == 1 and "signal" in cats     # the 23:59:59 ops row is yesterday's
    ops = ev.filter(pl.col("event_type") == "connect")
    assert orjson.loads(ops["meta_json"][0]) == {"category": "ops", "conn_id": 1}


def test_event_state_is_carried_across_midnight(split, split_tables):
    """The machines run from the warm-up anchor: the date's events are the window's events cut
    at 00:00, so a type that fired just before midnight is still cooling down after it."""
    ev = split_tables["events"].filter(pl.col("meta_json").str.contains('"category":"signal"'))
    firsts = {}
    for ts, etype, meta in zip(ev["ts_ms"], ev["event_type"], ev["meta_json"]):
        m = orjson.loads(meta)
        firsts.setdefault((etype, m.get("direction")), (ts, m["since_prev_sec"]))
    # the first event of the date of some type and direction follows one from before midnight,
    # and that one's cool-down is respected across 00:00
    carried = {k: v for k, v in firsts.items() if v[1] is not None}
    assert carried
    for (etype, _), (ts, since) in carried.items():
        assert ts - since * 1000 < D0
        assert since >= (S.signals.divergence_cooldown_sec if etype.startswith("divergence")
                         else S.signals.cooldown_sec)


def test_derive_kind_matches_derive_all(split, split_tables):
    for kind in schemas.DERIVED_KINDS:
        assert D.derive_kind(kind, split, S, DAY, SYM).equals(split_tables[kind])
    with pytest.raises(ValueError):
        D.derive_kind("nope", split, S, DAY, SYM)


def test_stored_as_one_day_or_split_gives_same_values(tmp_path, split_tables):
    one = store(tmp_path, D0 - 8 * H, D0 + H, one_date=DAY)
    assert not one.list_files(f"raw/date={PREV}/symbol={SYM}/stream=agg_trade")
    got = D.derive_all(one, S, DAY, SYM)
    for kind in schemas.DERIVED_KINDS:
        assert got[kind].equals(split_tables[kind]), kind


def test_values_do_not_depend_on_capture_start_before_the_anchor(tmp_path, split_tables):
    w = D.Window.of(DAY, S)
    later = store(tmp_path, w.regime_start, D0 + H)   # capture started at the anchor (17:55)
    got = D.derive_all(later, S, DAY, SYM)
    for kind in schemas.DERIVED_KINDS:
        assert got[kind].equals(split_tables[kind]), kind


def test_no_look_ahead_appending_future_rows(tmp_path, split_tables):
    short = store(tmp_path, D0 - 8 * H, D0 + H // 2)
    got = D.derive_all(short, S, DAY, SYM)
    cut = D0 + H // 2
    for kind in ("cvd", "ofi", "fusion", "events"):
        full = split_tables[kind].filter(pl.col("ts_ms") < cut)
        assert got[kind].equals(full), kind
    prices_full = split_tables["prices"].filter(pl.col("event_ts_ms") < cut)
    # receipt rate counts receipts up to this row's receipt time, so only rows received > 1 s
    # before the cut are fully determined by the shorter data
    early = pl.col("ts_ms") < cut - 1000 - 200
    assert got["prices"].filter(early).equals(prices_full.filter(early))


def test_rebuild_is_byte_identical(split, split_tables):
    digests = []
    for _ in range(2):
        tables = D.derive_all(split, S, DAY, SYM)
        paths = [D.write_kind(split, DAY, SYM, k, v) for k, v in tables.items()]
        digests.append([hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths])
    assert digests[0] == digests[1]
    assert [len(split.list_files(layout.derived_dir(DAY, SYM, k))) for k in schemas.DERIVED_KINDS] == [1] * 5


def test_empty_input_gives_empty_frames(tmp_path):
    st = Storage(tmp_path)
    out = D.derive_all(st, S, DAY, SYM)
    for kind, df in out.items():
        assert len(df) == 0 and df.columns == schemas.DERIVED_SCHEMAS[kind].names
        path = D.write_kind(st, DAY, SYM, kind, df)
        assert pa.parquet.read_schema(path).names == schemas.DERIVED_SCHEMAS[kind].names


def test_book_without_trades(tmp_path):
    st = Storage(tmp_path)
    sy.write_raw(st, SYM, "book", book(D0, D0 + 60_000))
    out = D.derive_all(st, S, DAY, SYM)
    assert len(out["ofi"]) == 240 and len(out["prices"]) == 0
    assert set(out["fusion"]["regime"]) == {"warmup"} and out["fusion"]["z_cvd"].to_list() == [0.0] * 240


def test_cli_derive(tmp_path, capsys):
    """``derive`` goes through the DQ gate: two minutes of trades without book or ops fail
    blocking checks, so nothing is published, the partitions are quarantined and named."""
    st = Storage(tmp_path)
    sy.write_raw(st, SYM, "agg_trade", trades(D0 - 60_000, D0 + 60_000))
    rc = cli_main(["derive", "--data-dir", str(tmp_path), "--symbols", SYM])
    out = capsys.readouterr().out
    assert rc == 1 and f"{PREV} {SYM}:" in out and f"{DAY} {SYM}: prices=" in out
    assert f"quarantined (failed blocking DQ checks, not published): {PREV}|{SYM}, {DAY}|{SYM}" in out
    assert "schema_raw_book" in out
    assert not st.exists(layout.derived_file(DAY, SYM, "events"))
    assert (tmp_path / f"quarantine/date={DAY}/symbol={SYM}/kind=events/part-00000.parquet").exists()
    rc = cli_main(["derive", "--data-dir", str(tmp_path), "--date", DAY, "--symbols", SYM,
                   "--kinds", "cvd", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "cvd=" in out and "dry run: would quarantine" in out
    rc = cli_main(["derive", "--data-dir", str(tmp_path), "--date", DAY, "--symbols", SYM,
                   "--publish-on-fail"])
    assert rc == 0 and "ACCEPTED" in capsys.readouterr().out
    assert st.exists(layout.derived_file(DAY, SYM, "events"))
    assert cli_main(["derive", "--data-dir", str(tmp_path), "--date", "2025-1-2"]) == 2


def test_a_call_sees_the_raw_files_as_they_are_now(tmp_path):
    """No cache: a file rotated in since the last call is in the next one."""
    st = Storage(tmp_path)
    sy.write_raw(st, SYM, "agg_trade", trades(D0, D0 + 60_000), rotate_ms=600_000)
    first = D.derive_kind("prices", st, S, DAY, SYM)
    sy.write_raw(st, SYM, "agg_trade", trades(D0 + 60_000, D0 + 120_000), rotate_ms=600_000)
    assert len(D.derive_kind("cvd", st, S, DAY, SYM)) > len(first)


def test_written_file_does_not_depend_on_the_frames_chunks(split, split_tables, tmp_path):
    """A table held in many chunks writes the same bytes (the file is a function of the values)."""
    other = Storage(tmp_path)
    for kind, df in split_tables.items():
        n = len(df) // 3
        chunked = pl.concat([df.slice(0, n), df.slice(n, n), df.slice(2 * n)], rechunk=False)
        assert chunked.n_chunks() > 1 or len(df) < 3
        a = D.write_kind(split, DAY, SYM, kind, df)
        b = D.write_kind(other, DAY, SYM, kind, chunked)
        assert open(a, "rb").read() == open(b, "rb").read(), kind
