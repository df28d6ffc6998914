"""``ofi-cvd-harvest instance check``: is the Dagster instance in ``$DAGSTER_HOME`` usable?

Run it once after writing ``$DAGSTER_HOME/dagster.yaml`` and before starting the daemon and the
webserver (docs/deploy.md "One box + PostgreSQL"): a PostgreSQL URL without the psycopg2 driver
is refused with one line (exit 2) before Dagster turns it into a traceback; otherwise the
instance is opened (creating or migrating its tables), the derive pool's limit is stored
(``prepare_pools``: run it again after changing ``pools: default_limit``), and the storage and
run-queue limits are printed. Exit 1: the instance does not open.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..settings import SettingsError
from .instance import check_instance, redact


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"], help="check the instance")
    p.add_argument("--dagster-home", default=os.environ.get("DAGSTER_HOME"),
                   help="instance directory holding dagster.yaml (default $DAGSTER_HOME)")


def _limits(instance) -> list[str]:
    cc = instance.get_concurrency_config()
    lines = []
    if cc.run_queue_config is not None:
        q = cc.run_queue_config
        tags = ", ".join(
            f"{t['key']}{'=' + t['value'] if isinstance(t.get('value'), str) else ''}"
            f"{' per value' if isinstance(t.get('value'), dict) else ''} ≤ {t['limit']}"
            for t in q.tag_concurrency_limits or [])
        lines.append(f"run queue: ≤ {q.max_concurrent_runs} runs; {tags or 'no tag limits'}")
    pools = cc.pool_config
    lines.append(f"pools: default limit {pools.default_pool_limit}, granularity "
                 f"{pools.pool_granularity.value if pools.pool_granularity else 'op'}")
    return lines


def prepare_pools(instance) -> dict[str, int]:
    """Store the derive pool's limit from the config's ``pools: default_limit``.

    Dagster 1.13.27's queue stores it itself, but (1) counts a new pool only from its next pass,
    so its first pass launches every derive run queued at that moment, and (2) on PostgreSQL
    cannot update the stored limit after ``default_limit`` changed (the failed INSERT aborts the
    transaction of the UPDATE meant to follow it; dagster-io/dagster#33552), after which no
    queue pass counts the pool at all.
    A limit set by hand (``dagster instance concurrency set``) is left alone.
    Returns the pool limits now stored."""
    from ..orchestration.run_queue import DERIVE_POOL

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    default = instance.global_op_concurrency_default_limit
    stored = {p.name: p for p in storage.get_pool_limits()}.get(DERIVE_POOL)
    if stored is not None and stored.from_default and stored.limit != default:
        storage.delete_concurrency_limit(DERIVE_POOL)
        stored = None
    if stored is None:
        storage.initialize_concurrency_limit_to_default(DERIVE_POOL)
    return {p.name: p.limit for p in storage.get_pool_limits()}


def run(args: argparse.Namespace) -> int:
    if not args.dagster_home:
        raise SettingsError("DAGSTER_HOME is not set (or pass --dagster-home DIR)")
    home = Path(args.dagster_home).resolve()
    check_instance(home)   # one line, exit 2 (cli.main) for an unusable PostgreSQL URL
    import dagster as dg

    from ..orchestration.run_queue import DERIVE_POOL

    os.environ["DAGSTER_HOME"] = str(home)   # what the config's `env: DAGSTER_HOME` reads
    logging.disable(logging.WARNING)   # dagster-postgres logs a traceback per connection retry
    try:
        instance = dg.DagsterInstance.from_config(str(home))
    except Exception as exc:   # unreachable server, bad credentials, unreadable config
        root = exc
        while root.__cause__ is not None:   # the driver's reason, not "too many retries"
            root = root.__cause__
        first = (str(root).strip().splitlines() or [""])[0]
        print(f"ofi-cvd-harvest: cannot open the Dagster instance in {home}: "
              f"{type(root).__name__}: {first}", file=sys.stderr)
        return 1
    finally:
        logging.disable(logging.NOTSET)
    with instance:
        storage = instance.run_storage
        where = getattr(storage, "postgres_url", None)
        shown = redact(where) if where else str(home)
        limits = prepare_pools(instance)
        pool = f"; pool {DERIVE_POOL!r} limit {limits.get(DERIVE_POOL, 'none')}"
        print(f"instance {home}: {type(storage).__name__} at {shown}, "
              f"{instance.get_runs_count()} runs")
        for line in _limits(instance):
            print(line + (pool if line.startswith("pools") else ""))
    return 0
