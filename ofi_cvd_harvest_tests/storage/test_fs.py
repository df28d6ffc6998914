"""storage/fs.py on a local root: atomic, durable Parquet writes (never a half file under a final
name), listings that never show temp files, stale-temp clean-up by age, and reads that verify
page CRCs."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest.storage.fs import TMP_SUFFIX, Storage, parquet_options

from ..damage import flip_inside_page

SCHEMA = pa.schema([("ts", pa.int64()), ("qty", pa.float64()), ("side", pa.string())])


def table(n: int = 1000, start: int = 0) -> pa.Table:
    return pa.table({"ts": list(range(start, start + n)),
                     "qty": [0.5 + i % 7 for i in range(n)],
                     "side": ["buy" if i % 3 else "sell" for i in range(n)]}, schema=SCHEMA)


def test_root_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st = Storage("data/")                       # relative roots are resolved once
    assert st.root == str(tmp_path / "data") and st.local and st.url is None
    assert st.path("raw/x") == f"{tmp_path}/data/raw/x" and st.path("") == st.root
    assert st.uri("raw/x") == st.path("raw/x")


def test_write_read_and_replace(tmp_path):
    st = Storage(tmp_path)
    path = st.write_parquet("a/b/part.parquet", table())
    assert path == f"{tmp_path}/a/b/part.parquet" and st.exists("a/b/part.parquet")
    assert st.read_parquet([path]).equals(table())
    st.write_parquet("a/b/part.parquet", table(10, start=5))     # replaces whole
    assert st.read_parquet([path]).equals(table(10, start=5))
    assert st.read_parquet([path], columns=["ts"]).column_names == ["ts"]
    assert st.read_parquet([]) is None
    assert not list(tmp_path.rglob(f"*{TMP_SUFFIX}"))


def test_files_carry_the_write_options(tmp_path):
    path = Storage(tmp_path).write_parquet("t.parquet", table())
    col = {c.path_in_schema: c for c in
           (pq.ParquetFile(path).metadata.row_group(0).column(i) for i in range(3))}
    assert col["ts"].compression == "ZSTD" and "DELTA_BINARY_PACKED" in col["ts"].encodings
    assert "RLE_DICTIONARY" in col["side"].encodings          # strings keep their dictionary
    opts = parquet_options(SCHEMA, compression="lz4")
    assert opts["compression"] == "lz4" and opts["write_page_checksum"] is True
    assert opts["use_dictionary"] == ["qty", "side"]
    opts["use_dictionary"].append("ts")                     # a caller's copy, not the cache's
    opts["column_encoding"]["qty"] = "PLAIN"
    again = parquet_options(SCHEMA)
    assert again["use_dictionary"] == ["qty", "side"] and "qty" not in again["column_encoding"]


def test_a_failed_rename_leaves_neither_temp_nor_final(tmp_path):
    st = Storage(tmp_path)
    (tmp_path / "d" / "part.parquet").mkdir(parents=True)      # the final name is taken
    with pytest.raises(OSError):
        st.write_parquet("d/part.parquet", table())
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["part.parquet"]
    assert (tmp_path / "d" / "part.parquet").is_dir()


def test_a_failed_serialisation_leaves_no_temp_file(tmp_path):
    """A column type Parquet has no mapping for (a union): the writer raises mid-write, after
    the temp file was opened."""
    st = Storage(tmp_path)
    union = pa.UnionArray.from_sparse(pa.array([0, 1], pa.int8()),
                                      [pa.array([1, 2]), pa.array(["a", "b"])])
    with pytest.raises(pa.ArrowException):
        st.write_parquet("d/bad.parquet", pa.table({"u": union}))
    assert list((tmp_path / "d").iterdir()) == []


def test_listing_is_recursive_sorted_and_never_shows_temp_files(tmp_path):
    st = Storage(tmp_path)
    for rel in ("r/b/2.parquet", "r/a/1.parquet", "r/a/0.parquet"):
        st.write_parquet(rel, table(3))
    (tmp_path / "r" / "a" / f"9.parquet.1234abcd{TMP_SUFFIX}").write_bytes(b"half")
    (tmp_path / "r" / "a" / "notes.json").write_text("{}")
    assert st.list_files("r") == [f"{tmp_path}/r/a/0.parquet", f"{tmp_path}/r/a/1.parquet",
                                  f"{tmp_path}/r/b/2.parquet"]
    assert st.list_files("r", suffix=".json") == [f"{tmp_path}/r/a/notes.json"]
    assert st.list_files("missing") == []


def test_stale_temp_files_are_removed_by_age(tmp_path):
    st = Storage(tmp_path)
    old = tmp_path / "raw" / f"a.parquet.old{TMP_SUFFIX}"
    new = tmp_path / "raw" / "x" / f"b.parquet.new{TMP_SUFFIX}"
    new.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    new.write_bytes(b"in flight")
    final = st.write_parquet("raw/c.parquet", table(2))
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert st.remove_stale_tmp("raw", older_than_sec=600) == [str(old)]
    assert new.exists() and os.path.exists(final)
    assert st.remove_stale_tmp("raw") == [str(new)]             # 0: every temp file
    assert st.remove_stale_tmp("nothing-here") == []
    assert os.path.exists(final)


def test_delete_takes_relative_or_absolute(tmp_path):
    st = Storage(tmp_path)
    a = st.write_parquet("a.parquet", table(1))
    st.write_parquet("b.parquet", table(1))
    st.delete(a)
    st.delete("b.parquet")
    assert st.list_files("") == []


def test_reading_a_bitrotted_page_fails_loudly(tmp_path):
    """The footer is intact, so metadata looks fine; the page CRC catches the damage."""
    st = Storage(tmp_path)
    path = st.write_parquet("t.parquet", table(50_000))
    flip_inside_page(tmp_path / "t.parquet", column="qty")
    assert pq.read_metadata(path).num_rows == 50_000
    with pytest.raises(OSError, match="CRC"):
        st.read_parquet([path])


@pytest.mark.parametrize("rows", [0, 1, 300_000])   # empty, tiny, several MB
def test_the_file_is_the_writers_bytes(tmp_path, rows):
    """The durable local write (temp file, fsync, rename) adds nothing and loses nothing: the
    file equals pq.write_table's output to memory with the same options (the bytes are the
    contract; benchmarks/bench_build.py measures the write's cost)."""
    import numpy as np
    from ofi_cvd_harvest import schemas
    rng = np.random.default_rng(rows)
    cols = {}
    for f in schemas.AGG_TRADE:
        if f.type == pa.int64():
            cols[f.name] = pa.array(rng.integers(0, 2**40, rows))
        elif f.type == pa.float64():
            cols[f.name] = pa.array(rng.random(rows))
        elif f.type == pa.bool_():
            cols[f.name] = pa.array(rng.random(rows) < 0.5)
        else:
            cols[f.name] = pa.array([f"S{i % 7}" for i in range(rows)], pa.string())
    table = pa.table(cols, schema=schemas.AGG_TRADE)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema))
    want = sink.getvalue().to_pybytes()
    assert rows < 300_000 or len(want) > 2 << 20
    path = Storage(tmp_path).write_parquet("raw/x/f.parquet", table)
    assert open(path, "rb").read() == want
