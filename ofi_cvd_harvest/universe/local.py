"""Where a shard's capture keeps its host-local state, so several shards share a host: its own
``artifacts/shards/<shard>/`` (checkpoint, run logs) and metrics port ``PROMETHEUS_PORT + shard
number`` (docs/deploy.md "Capture shards"). One rule for the Dagster op and the CLI."""

from __future__ import annotations

from ..settings import Settings
from .plan import shard_index


def shard_local(settings: Settings) -> Settings:
    """``settings`` of the capture of ``settings.shard`` (unchanged without a shard)."""
    if not settings.shard:
        return settings
    idx = shard_index(settings.shard) or 0
    return settings.replace(
        artifacts_dir=settings.artifacts_dir / "shards" / settings.shard,
        prometheus_port=settings.prometheus_port + idx if settings.prometheus_port else 0)
