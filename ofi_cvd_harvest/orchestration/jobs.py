"""``capture_job``: one op running the capture loop for the configured hours inside a Dagster run.

The op is thin: the settings of the run (:func:`effective_settings`), the capture in a worker
thread that stops cleanly on termination (capture/threaded.py), the summary as run metadata,
and, with ``precheck``, the DoD gate (ofi_cvd_harvest/precheck.py). Tags: orchestration/tags.py.
Its symbols become members of the ``symbol`` partitions dimension (orchestration/partitions.py).
"""


import dataclasses
import math
import socket
import time
from typing import Any

import dagster as dg
import psutil
from pydantic import Field

from ..settings import Settings, load_settings
from ..universe.local import shard_local
from .capture_groups import capture_groups
from .partitions import register_symbols
from .resources import HarvestSettings, metrics_url
from .tags import (GROUP_TAG, HOST_TAG, MAX_RUNTIME_TAG, PID_START_TAG, PID_TAG, ROLE_TAG,
                   RUNTIME_MARGIN_SEC, capture_run_tags, group_name, max_runtime_sec)

# the tag names are orchestration/tags.py's; re-exported for callers that import them from here
__all__ = ["CaptureConfig", "GROUP_TAG", "HOST_TAG", "MAX_RUNTIME_TAG", "PID_START_TAG",
           "PID_TAG", "ROLE_TAG", "RUNTIME_MARGIN_SEC", "capture", "capture_groups",
           "capture_job", "capture_run_tags", "effective_settings", "group_name",
           "max_runtime_sec"]


class CaptureConfig(dg.Config):
    """Run config of the capture op; empty values fall back to settings (config file + env)."""

    symbols: list[str] = Field(default_factory=list, description="symbols (default: SYMBOLS)")
    run_hours: float | None = Field(default=None, description="duration in hours (default: RUN_HOURS)")
    run_seconds: float | None = Field(default=None, description="duration in seconds (overrides run_hours)")
    precheck: bool = Field(default=False, description="capture precheck_minutes, then gate on the DoD")
    shard: str = Field(default="", description="the shard this run captures (shards mode; "
                                               "default: CAPTURE_SHARD)")


def _summary_dict(summary: Any, max_files: int = 10) -> dict:
    """The capture summary as plain data; the file list (thousands after 72 h) is cut to the
    last ``max_files`` names."""
    if dataclasses.is_dataclass(summary):
        out = dataclasses.asdict(summary)
    else:
        out = dict(summary) if isinstance(summary, dict) else {"summary": repr(summary)}
    files = out.get("files")
    if isinstance(files, list) and len(files) > max_files:
        out["files"] = files[-max_files:]
        out["files_omitted"] = len(files) - max_files
    return out


def effective_settings(harvest: HarvestSettings, config: CaptureConfig) -> tuple[Settings, float]:
    """Settings and duration (s) of one capture run from the resource, run config and env."""
    settings = harvest.settings()
    if config.symbols:
        settings = settings.replace(symbols=tuple(s.strip().upper() for s in config.symbols))
    if config.precheck:
        seconds = settings.precheck_minutes * 60.0
    elif config.run_seconds is not None:
        seconds = float(config.run_seconds)
    elif config.run_hours is not None:
        seconds = float(config.run_hours) * 3600.0
    else:
        seconds = settings.run_hours * 3600.0
    if not (seconds > 0 and math.isfinite(seconds)):   # nan would run forever
        raise dg.Failure(f"capture duration must be a finite number > 0 s (got {seconds})")
    if config.shard:
        settings = settings.replace(shard=config.shard)
    if settings.shard:   # one host may run several shards (universe/local.py)
        return shard_local(settings), seconds
    groups = [group_name(g) for g in capture_groups(settings)]
    if len(groups) > 1:
        # Several captures side by side must not share a checkpoint, run log or metrics port.
        name = group_name(settings.symbols)
        idx = groups.index(name) if name in groups else len(groups)
        settings = settings.replace(
            artifacts_dir=settings.artifacts_dir / "groups" / name,
            prometheus_port=settings.prometheus_port + idx if settings.prometheus_port else 0)
    return settings, seconds


@dg.op(
    description="Capture aggTrade + book for the configured symbols and hours into data/raw "
                "(stops cleanly on termination: files finalised, checkpoint written).",
)
def capture(context: dg.OpExecutionContext, config: CaptureConfig,
            harvest: HarvestSettings) -> dg.Output[dict]:
    from ..capture.outcome import unwritten_message
    from ..capture.threaded import run_capture_in_thread  # lazy: keeps definitions importable

    settings, seconds = effective_settings(harvest, config)
    proc = psutil.Process()
    # Liveness for the capture sensor (the default run launcher cannot health-check workers),
    # and a max runtime matched to this run's real duration.
    context.instance.add_run_tags(context.run_id, {
        PID_TAG: str(proc.pid), PID_START_TAG: f"{proc.create_time():.3f}",
        HOST_TAG: socket.gethostname(), MAX_RUNTIME_TAG: str(max_runtime_sec(seconds)),
    })
    register_symbols(context.instance, settings.symbols)   # what is captured is derivable
    url = metrics_url(settings)
    context.log.info(f"capture {','.join(settings.symbols)} for {seconds:.0f} s from "
                     f"{settings.ws_base_url} / {settings.rest_base_url} into {settings.data_dir}; "
                     f"metrics at {url}")

    start = time.time()
    summary = _summary_dict(run_capture_in_thread(settings, seconds, context.log,
                                                  name=context.run_id[:8]))
    end = time.time()
    metadata: dict[str, Any] = {
        "metrics_endpoint": dg.MetadataValue.url(url),
        "symbols": ",".join(settings.symbols),
        "duration_sec": round(end - start, 1),
        "summary": dg.MetadataValue.json(summary),
    }
    for sym, counts in (summary.get("symbols") or {}).items():
        if isinstance(counts, dict):
            metadata[f"{sym}_trades"] = int(counts.get("trades_ws", 0)) + int(counts.get("trades_healed", 0))
            metadata[f"{sym}_book_rows"] = int(counts.get("book_rows", 0))
    lost = unwritten_message(summary.get("unwritten") or {})
    if lost:   # the run did not do its job: a green run would hide lost rows (capture/outcome.py)
        raise dg.Failure(f"capture ended with unwritten rows: {lost}", metadata=metadata)
    if config.precheck:   # the same flow as `capture --precheck-only` (ofi_cvd_harvest/precheck.py)
        from ..precheck import check_captured
        result = check_captured(settings, start, end, run=context.run_id,
                                say=context.log.info, err=context.log.warning)
        status, facts = result.status, result.facts()
        context.log.info(f"precheck: {facts}")
        metadata["precheck"] = dg.MetadataValue.json(facts)
        if facts.get("report"):
            metadata["dq_report"] = dg.MetadataValue.path(facts["report"])
        if status != 0:
            raise dg.Failure(f"precheck failed: {facts.get('failed') or 'nothing usable captured'}",
                             metadata=metadata)
    return dg.Output(summary, metadata=metadata)


def _default_settings() -> Settings:
    return load_settings()


_DEFAULTS = _default_settings()


@dg.job(
    description="Long-running capture of one symbol group (kept alive by capture_sensor). "
                "Terminate from the UI to stop it cleanly; stop capture_sensor first or it is "
                "relaunched after the cool-down.",
    tags=capture_run_tags(_DEFAULTS.symbols, _DEFAULTS.run_hours * 3600.0),
    metadata={"metrics_endpoint": dg.MetadataValue.url(metrics_url(_DEFAULTS))},
)
def capture_job() -> None:
    capture()
