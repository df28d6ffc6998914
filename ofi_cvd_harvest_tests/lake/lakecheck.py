"""Reading a lake on s3:// back, and watching its listing while a capture writes."""

from __future__ import annotations

import threading

import polars as pl

from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.storage.objectstore import ObjectStore


def read_lake(url: str, stream: str, symbol: str) -> pl.DataFrame:
    st = Storage(url)
    paths = [p for p in st.list_files("raw") if f"/symbol={symbol}/stream={stream}/" in p]
    table = st.read_parquet(paths)
    return pl.from_arrow(table) if table is not None else pl.DataFrame()


class Lister(threading.Thread):
    """Lists the bucket every ``every`` s; remembers each key's sizes as seen."""

    def __init__(self, url: str, every: float = 0.1):
        super().__init__(daemon=True)
        self.store, self.prefix = ObjectStore.for_url(url)
        self.every = every
        self.seen: dict[str, set[int]] = {}
        self.lists = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                for key, size in self.store.list(self.prefix):
                    self.seen.setdefault(key, set()).add(size)
                self.lists += 1
            except Exception:   # the store may be down on purpose
                continue

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def assert_only_whole_objects(self) -> None:
        """Every key ever listed is a final ``.parquet`` name and was only ever seen at its
        final size: nothing temporary or partial was visible."""
        final = dict(self.store.list(self.prefix))
        assert self.lists > 5
        for key, sizes in self.seen.items():
            assert key.endswith(".parquet") and "/_segments/" not in key, key
            assert sizes == {final[key]}, (key, sizes, final.get(key))
