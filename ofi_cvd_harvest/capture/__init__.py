"""The long-running capture: WebSocket + REST (exchange) through the sans-I/O protocol core
into atomic raw Parquet partitions (storage). Entry points: :mod:`.runner`, :mod:`.cli`."""
