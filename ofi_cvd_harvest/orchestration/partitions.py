"""Date × symbol partitions shared by raw (external) assets, derived assets and checks.

Multi-partition keys order dimensions alphabetically: ``"2025-01-20|BTCUSDT"``.

The symbol dimension follows what is captured (docs/dagster.md "Partitions"): it is a
:class:`dagster.DynamicPartitionsDefinition` named ``symbol`` whose members live in the Dagster
instance. They are only ever added, never deleted (a delisted symbol keeps its history):

- when the code location loads, the configured symbols (``SYMBOLS``, ``capture.symbol_groups``,
  ``EXTRA_PARTITION_SYMBOLS``), so ``dagster job execute``/``dagster asset materialize`` work
  on a fresh instance (:func:`register_configured_symbols`);
- by ``capture_sensor``, the symbols it captures (in shards mode the universe's listings);
- by ``raw_partitions_sensor``, every symbol found in the raw tree (replays, older captures).

Dagster refuses a run of an unknown key (``dagster asset materialize`` before it starts, a
``dagster job execute`` run when its asset is stored), hence the registration before any run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import dagster as dg

from ..settings import SYMBOL_RE, Settings, load_settings

_SETTINGS = load_settings()   # read once, when the code location loads
PARTITIONS_START_DATE = _SETTINGS.partitions_start_date   # PARTITIONS_START_DATE
SYMBOL_DIMENSION = "symbol"   # the dynamic partitions definition's name in the instance

date_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START_DATE, end_offset=1)
symbol_partitions = dg.DynamicPartitionsDefinition(name=SYMBOL_DIMENSION)
date_symbol_partitions = dg.MultiPartitionsDefinition(
    {"date": date_partitions, "symbol": symbol_partitions}
)

_log = logging.getLogger(__name__)


def configured_symbols(settings: Settings) -> list[str]:
    """SYMBOLS, the symbol groups' symbols and EXTRA_PARTITION_SYMBOLS, sorted."""
    groups = {s for g in settings.symbol_groups for s in g}
    return sorted(set(settings.symbols) | groups | set(settings.extra_partition_symbols))


def known_symbols(instance: dg.DagsterInstance) -> list[str]:
    """The symbol dimension's members, sorted."""
    return sorted(set(instance.get_dynamic_partitions(SYMBOL_DIMENSION)))


def missing_symbols(instance: dg.DagsterInstance, symbols: Iterable[str]) -> list[str]:
    """Those of ``symbols`` that are valid names (``^[A-Z0-9]{2,20}$``: no ``|``, no path) and
    not members yet, sorted."""
    wanted = {s for s in symbols if isinstance(s, str) and SYMBOL_RE.match(s)}
    return sorted(wanted - set(instance.get_dynamic_partitions(SYMBOL_DIMENSION)))


def add_symbols_requests(instance: dg.DagsterInstance, symbols: Iterable[str]
                         ) -> list[dg.AddDynamicPartitionsRequest]:
    """What a sensor returns so the daemon adds the missing ``symbols`` (empty: none missing)."""
    new = missing_symbols(instance, symbols)
    return [dg.AddDynamicPartitionsRequest(SYMBOL_DIMENSION, new)] if new else []


def register_symbols(instance: dg.DagsterInstance, symbols: Iterable[str]) -> list[str]:
    """Add the missing ``symbols`` now (code load, the capture op, CLI paths, tests); returns
    those added."""
    new = missing_symbols(instance, symbols)
    if new:
        try:
            instance.add_dynamic_partitions(SYMBOL_DIMENSION, new)
        except Exception:   # noqa: BLE001 — another process added one first (a unique index)
            still = missing_symbols(instance, new)
            if still:
                instance.add_dynamic_partitions(SYMBOL_DIMENSION, still)
    return new


def register_configured_symbols() -> None:
    """At code-location load, with ``DAGSTER_HOME`` set: the configured symbols become members.
    One read when nothing is missing; never fails the load (a warning instead)."""
    if not os.environ.get("DAGSTER_HOME"):
        return   # Dagster's CLI then uses an ephemeral instance this process cannot reach
    try:
        with dg.DagsterInstance.get() as instance:
            register_symbols(instance, configured_symbols(load_settings()))
    except Exception as exc:   # noqa: BLE001 — an unreachable instance must not stop the load
        _log.warning("symbol partitions not registered (%s: %s)", type(exc).__name__,
                     str(exc).splitlines()[0] if str(exc) else "")


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(date, symbol)`` from a multi-partition key (object or ``"date|SYMBOL"`` string)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["date"], dims["symbol"]
    date, symbol = str(key).split("|")
    return date, symbol
