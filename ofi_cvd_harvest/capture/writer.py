"""Raw-file writer: a drained :class:`Batch` -> one atomic zstd Parquet file.

Each batch gets ``write_retries`` immediate retries; a batch that still fails is kept by the
caller and retried at the next rotation (rows are never dropped). Every failed attempt is
counted (``write_errors_total``) and reported through ``on_error`` for the error budget.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Callable

from ..monitoring import metrics
from ..storage import layout
from ..storage.fs import Storage
from .buffers import Batch

OnError = Callable[[Batch, int, BaseException], None]   # (batch, attempt, exc)


class RawWriter:
    recent_files = 1000   # paths kept for the summary: a 300-symbol run writes 600 files a minute

    def __init__(self, storage: Storage, retries: int = 3, retry_sleep: float = 0.2,
                 on_error: OnError | None = None):
        self.storage = storage
        self.retries = retries
        self.retry_sleep = retry_sleep
        self.on_error = on_error or (lambda b, a, e: None)
        self._seq = itertools.count(1)
        self.files: deque[str] = deque(maxlen=self.recent_files)   # the latest final paths
        self.files_written = 0
        self.failed_attempts = 0

    def write(self, batch: Batch) -> str | None:
        """Write ``batch`` (blocking); returns the final path, or None if every attempt failed."""
        rel = layout.raw_file(batch.date, batch.symbol, batch.stream, batch.first_recv_ms,
                              next(self._seq))
        for attempt in range(self.retries + 1):
            batch.attempts += 1
            t0 = time.perf_counter()
            try:
                path = self.storage.write_parquet(rel, batch.table)
            except Exception as exc:  # disk full, read-only, permission, …
                self.failed_attempts += 1
                metrics.write_errors_total.labels(batch.stream).inc()
                self.on_error(batch, attempt, exc)
                if attempt < self.retries:
                    time.sleep(self.retry_sleep * (attempt + 1))
                continue
            metrics.parquet_flush_seconds.labels(batch.stream).observe(time.perf_counter() - t0)
            metrics.files_finalised_total.labels(batch.stream).inc()
            metrics.data_rows_total.labels(batch.symbol, batch.stream).inc(batch.rows)
            self.files.append(path)
            self.files_written += 1
            return path
        return None
