"""Which capture runs capture_sensor keeps alive: one per symbol group, or one per shard of the
exchange's universe (``capture.universe``; docs/deploy.md "Capture shards", docs/dagster.md).

Plain Python (no Dagster): the sensor asks :func:`resolve_groups` with its cursor and gets the
groups, the new cursor and notes for the tick text. In shards mode the cursor holds the shard
plan (universe/plan.py), so the plan is stable across evaluations and hosts (the cursor lives
in the Dagster instance): symbols keep their shard, listings join the lightest shard,
delistings leave. When the exchange cannot be asked, the last plan is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..settings import Settings
from ..universe.market import Universe, UniverseError, fetch_universe
from ..universe.plan import ShardPlan, plan_shards, shard_index
from .tags import capture_run_tags, group_name

SHARDS = "shards"


@dataclass(frozen=True)
class CaptureGroup:
    """One capture run to keep alive: its concurrency-tag value, symbols, shard and queue."""

    name: str
    symbols: tuple[str, ...]
    shard: str = ""              # shards mode: the shard name the run's capture serves
    queue: str | None = None     # the host queue (``dagster-celery/queue``), if any

    def run_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"symbols": list(self.symbols)}
        if self.shard:
            config["shard"] = self.shard
        return {"ops": {"capture": {"config": config}}}

    def tags(self, run_seconds: float) -> dict[str, str]:
        return capture_run_tags(self.symbols, run_seconds, name=self.name, queue=self.queue)


def capture_groups(settings: Settings) -> list[tuple[str, ...]]:
    """Symbols mode: ``capture.symbol_groups`` (``CAPTURE_SYMBOL_GROUPS="BTCUSDT,ETHUSDT;SOLUSDT"``)
    or, by default, one group with every configured symbol."""
    return list(settings.symbol_groups) or [tuple(settings.symbols)]


def host_queue(queues: tuple[str, ...], shard: str) -> str | None:
    """The host queue of ``shard``: round-robin over ``queues`` by shard number (None: none)."""
    if not queues:
        return None
    return queues[(shard_index(shard) or 0) % len(queues)]


def resolve_groups(settings: Settings, cursor: str | None,
                   fetch: Callable[..., Universe] = fetch_universe
                   ) -> tuple[list[CaptureGroup], str | None, list[str]]:
    """(groups, new cursor, notes) of one sensor evaluation."""
    if settings.capture_universe != SHARDS:
        return [CaptureGroup(group_name(g), g) for g in capture_groups(settings)], cursor, []
    previous = ShardPlan.from_json(cursor)
    try:
        uni = fetch(settings.rest_base_url, settings.rest_weight_limit_per_min, attempts=1)
    except UniverseError as exc:
        if previous is None:
            return [], cursor, [f"no shard plan yet ({exc})"]
        plan, notes = previous, [f"universe not refreshed, keeping the shard plan ({exc})"]
    else:
        plan = plan_shards(uni.volumes, settings.capture_shards,
                           settings.max_streams_per_connection, previous)
        notes = list(plan.notes) + [f"refused symbol name {b}" for b in uni.skipped]
    groups = [CaptureGroup(name, syms, name, host_queue(settings.host_queues, name))
              for name, syms in plan.shards.items() if syms]
    return groups, plan.to_json(), notes
