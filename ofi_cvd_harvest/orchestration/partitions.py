"""Date × symbol partitions shared by raw (external) assets, derived assets and checks.

Multi-partition keys order dimensions alphabetically: ``"2025-01-20|BTCUSDT"``.
"""

from __future__ import annotations

import dagster as dg

from ..settings import load_settings

_SETTINGS = load_settings()   # read once, when the code location loads
PARTITIONS_START_DATE = _SETTINGS.partitions_start_date   # PARTITIONS_START_DATE


def symbols() -> list[str]:
    return list(load_settings().symbols)


date_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START_DATE, end_offset=1)
symbol_partitions = dg.StaticPartitionsDefinition(   # SYMBOLS + EXTRA_PARTITION_SYMBOLS
    sorted(set(_SETTINGS.symbols) | set(_SETTINGS.extra_partition_symbols)))
date_symbol_partitions = dg.MultiPartitionsDefinition(
    {"date": date_partitions, "symbol": symbol_partitions}
)


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(date, symbol)`` from a multi-partition key (object or ``"date|SYMBOL"`` string)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["date"], dims["symbol"]
    date, symbol = str(key).split("|")
    return date, symbol
