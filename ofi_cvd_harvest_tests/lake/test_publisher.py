"""The spool publisher against a real moto_server: once, in order, never overwritten."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from ofi_cvd_harvest.capture.publisher import Publisher, SpoolFull, SpoolStorage
from ofi_cvd_harvest.storage.objectstore import ObjectExists, ObjectStore


def _spool_file(spool: Path, name: str, payload: bytes) -> str:
    p = spool / "raw/date=2026-01-01/symbol=BTCUSDT/stream=agg_trade" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(payload)
    return str(p)


def _keys(url: str) -> list[str]:
    store, prefix = ObjectStore.for_url(url)
    return [k for k, _ in store.list(prefix)]


def test_create_never_overwrites(lake):
    url, _ = lake
    store, prefix = ObjectStore.for_url(url)
    assert store.create(f"{prefix}/a.parquet", b"one").created
    again = store.create(f"{prefix}/a.parquet", b"one")       # a retried publish: same bytes
    assert not again.created
    with pytest.raises(ObjectExists):
        store.create(f"{prefix}/a.parquet", b"two")
    assert store.get(f"{prefix}/a.parquet") == b"one"


def test_killed_after_put_before_unlink_publishes_nothing_twice(lake, tmp_path):
    url, _ = lake
    spool = tmp_path / "spool"
    path = _spool_file(spool, "part-1000-000001.parquet", b"PAR1 rows PAR1")
    pub = Publisher(url, spool, 10**9)
    store = pub.store
    store.create(pub.key_of(path), Path(path).read_bytes())    # the PUT of the killed run
    pub.start()                                                 # the next start
    assert pub.stop(10) == 0
    assert not Path(path).exists()
    assert (pub.published, pub.already_there) == (0, 1)
    assert _keys(url) == [pub.key_of(path)]


def test_same_name_other_bytes_is_published_under_a_new_name(lake, tmp_path):
    url, _ = lake
    spool = tmp_path / "spool"
    path = _spool_file(spool, "part-1000-000001.parquet", b"ours")
    pub = Publisher(url, spool, 10**9)
    pub.store.create(pub.key_of(path), b"someone else's")
    pub.start()
    assert pub.stop(10) == 0
    keys = _keys(url)
    renamed = [k for k in keys if k.endswith("part-1000-000001-r1.parquet")]
    assert len(keys) == 2 and len(renamed) == 1
    assert pub.store.get(renamed[0]) == b"ours"
    assert pub.store.get(pub.key_of(path)) == b"someone else's"


def test_store_down_files_wait_in_order_then_go(lake, tmp_path):
    url, proxy = lake
    spool = tmp_path / "spool"
    proxy.down()
    pub = Publisher(url, spool, 10**9)
    pub.backoff_max_sec = 0.5
    order: list[str] = []
    create = pub.store.create
    pub.store.create = lambda key, body: (order.append(key), create(key, body))[1]
    pub.start()
    paths = [_spool_file(spool, f"part-{1000 + i}-{i + 1:06d}.parquet", b"x" * (i + 1))
             for i in range(5)]
    for p in paths:
        pub.ready(p)
    deadline = time.time() + 30           # botocore retries once, with back-off, first
    while pub.errors < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert pub.spool_files == 5 and pub.errors >= 2 and all(Path(p).exists() for p in paths)
    assert set(order) == {pub.key_of(paths[0])}                   # retried, never skipped
    proxy.up()
    assert pub.stop(30) == 0
    assert list(dict.fromkeys(order)) == [pub.key_of(p) for p in paths]   # oldest first
    assert not any(Path(p).exists() for p in paths)
    assert len(_keys(url)) == 5


def test_spool_full_refuses_the_writer(lake, tmp_path):
    url, proxy = lake
    proxy.down()
    spool = tmp_path / "spool"
    pub = Publisher(url, spool, max_bytes=100)
    storage = SpoolStorage(spool, pub)
    t = pa.table({"x": list(range(1000))})
    first = storage.write_parquet("raw/date=2026-01-01/symbol=BTCUSDT/stream=ops/part-1-000001.parquet", t)
    pub.ready(first)
    with pytest.raises(SpoolFull):
        storage.write_parquet("raw/date=2026-01-01/symbol=BTCUSDT/stream=ops/part-2-000002.parquet", t)


def test_start_holds_back_files_whose_segments_are_not_released(lake, tmp_path):
    """A file the start-up recovery wrote from segment files it could not release yet (shared
    with a partition whose write failed) waits in the spool until they are (issue 15)."""
    url, _ = lake
    spool = tmp_path / "spool"
    held = _spool_file(spool, "part-1000-000001.parquet", b"held")
    free = _spool_file(spool, "part-1000-000002.parquet", b"free")
    pub = Publisher(url, spool, 10**9)
    pub.start(hold=[str(Path(held).parent / ".." / "stream=agg_trade" / Path(held).name)])
    deadline = time.time() + 10
    while Path(free).exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not Path(free).exists() and Path(held).exists()
    assert _keys(url) == [pub.key_of(free)]
    pub.ready(held)                     # its segments released
    assert pub.stop(10) == 0
    assert sorted(_keys(url)) == sorted([pub.key_of(free), pub.key_of(held)])
