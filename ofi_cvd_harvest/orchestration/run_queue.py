"""What the run queue reads from runs: the derive pool and the priority of derive runs.

The limits themselves live in the instance config (``dagster.yaml``,
``deploy/dagster.postgres.yaml``: ``concurrency:``); docs/dagster.md "Instance". The queue
launches queued runs highest ``dagster/priority`` first (no tag = 0, as for backfills), so the
partitions the sensor derives as the day goes on never wait behind a year of backfill.
Plain Python: no Dagster import.
"""

from __future__ import annotations

from ..storage import layout
from .tags import PRIORITY_TAG

DERIVE_POOL = "derive"          # pool of the derived multi-asset (orchestration/assets.py)
CAPTURE_PRIORITY = 3            # a capture never waits behind derivations in a full queue
TODAY_PRIORITY = 2              # today's partitions (the sensor's refreshes)
YESTERDAY_PRIORITY = 1          # the final derivation of the day that just closed
# anything older, backfills included: 0


def derive_priority(partition_key: str, t: float) -> int:
    """Queue priority of a derive run for ``date|SYMBOL`` requested at time ``t`` (UTC days)."""
    date = partition_key.split("|", 1)[0]
    today = layout.utc_date(int(t * 1000))
    if date == today:
        return TODAY_PRIORITY
    if date == layout.previous_date(today):
        return YESTERDAY_PRIORITY
    return 0


def derive_priority_tags(partition_key: str, t: float) -> dict[str, str]:
    """The ``dagster/priority`` tag of a derive run (empty for priority 0: the queue's default)."""
    p = derive_priority(partition_key, t)
    return {PRIORITY_TAG: str(p)} if p else {}
