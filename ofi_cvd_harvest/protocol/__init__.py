"""Sans-I/O Binance USDT-M protocol core: decoding, stream naming, gap detection, book sync.
Pure functions and state machines fed bytes/records; no sockets, no files (tested without
either). The I/O layers live in :mod:`ofi_cvd_harvest.exchange` and :mod:`~.capture`."""
