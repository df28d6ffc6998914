"""``capture_job``: one op running the capture loop for the configured hours inside a Dagster run.

Why a worker thread: the capture is an asyncio program; running it in a thread lets the op's
main thread stay responsive to Dagster's termination (``DagsterExecutionInterruptedError``, a
``BaseException`` raised in the main thread on SIGINT/SIGTERM). On termination we set the
capture's ``stop_event``, wait for it to finalise open files and write the checkpoint, and
*re-raise* so the run ends CANCELED/FAILURE (never swallowed). The capture's log records are
queued by a handler and forwarded to ``context.log`` from the main thread, so they land in the
Dagster run log as well as in the capture's own run-log file.
"""


import contextlib
import dataclasses
import logging
import math
import os
import queue
import signal
import socket
import threading
import time
from typing import Any

import dagster as dg
import psutil
from pydantic import Field

from ..settings import Settings, load_settings
from .resources import HarvestSettings, metrics_url

GROUP_TAG = "ofi_cvd/capture_group"
ROLE_TAG = "ofi_cvd/role"
PID_TAG = "ofi_cvd/pid"
HOST_TAG = "ofi_cvd/host"
PID_START_TAG = "ofi_cvd/pid_create_time"
MAX_RUNTIME_TAG = "dagster/max_runtime"
# Beyond the planned duration: time to finalise, heal the last gap and write the checkpoint.
RUNTIME_MARGIN_SEC = 3600
STOP_GRACE_SEC = 120.0  # how long a terminated run waits for the capture to finalise


def group_name(symbols) -> str:
    """The concurrency-limit tag value of a symbol group (order-insensitive)."""
    return "-".join(sorted(symbols))


def capture_groups(settings: Settings, env=None) -> list[tuple[str, ...]]:
    """Symbol groups that each get one capture run: ``CAPTURE_SYMBOL_GROUPS="BTCUSDT,ETHUSDT;SOLUSDT"``
    or, by default, one group with every configured symbol."""
    env = os.environ if env is None else env
    spec = env.get("CAPTURE_SYMBOL_GROUPS", "").strip()
    if not spec:
        return [tuple(settings.symbols)]
    groups = [tuple(s.strip().upper() for s in part.split(",") if s.strip()) for part in spec.split(";")]
    return [g for g in groups if g]


def max_runtime_sec(run_seconds: float) -> int:
    return int(run_seconds) + RUNTIME_MARGIN_SEC


def capture_run_tags(symbols, run_seconds: float) -> dict[str, str]:
    """Tags of a capture run: one-per-group concurrency key and a max runtime for this job only."""
    return {GROUP_TAG: group_name(symbols), ROLE_TAG: "capture",
            MAX_RUNTIME_TAG: str(max_runtime_sec(run_seconds))}


class CaptureConfig(dg.Config):
    """Run config of the capture op; empty values fall back to settings (config file + env)."""

    symbols: list[str] = Field(default_factory=list, description="symbols (default: SYMBOLS)")
    run_hours: float | None = Field(default=None, description="duration in hours (default: RUN_HOURS)")
    run_seconds: float | None = Field(default=None, description="duration in seconds (overrides run_hours)")
    precheck: bool = Field(default=False, description="capture precheck_minutes, then gate on the DoD")


class _QueueHandler(logging.Handler):
    """Collects records from any thread; the op's main thread forwards them to context.log."""

    def __init__(self, q: queue.Queue):
        super().__init__()
        self.q = q

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.q.put_nowait((record.levelno, self.format(record)))
        except Exception:  # logging must never break the capture
            pass


def _drain(q: queue.Queue, log) -> None:
    while True:
        try:
            level, msg = q.get_nowait()
        except queue.Empty:
            return
        log.log(level, msg)


@contextlib.contextmanager
def _shielded():
    """Record, rather than raise, SIGINT/SIGTERM while the capture finalises (main thread only;
    the previous handlers come back afterwards and the pending interrupt is re-raised by the
    caller anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: None)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


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
    from ..capture.runner import run_capture_sync  # lazy: keeps definitions importable

    settings, seconds = effective_settings(harvest, config)
    proc = psutil.Process()
    # Liveness for the capture sensor (the default run launcher cannot health-check workers),
    # and a max runtime matched to this run's real duration.
    context.instance.add_run_tags(context.run_id, {
        PID_TAG: str(proc.pid), PID_START_TAG: f"{proc.create_time():.3f}",
        HOST_TAG: socket.gethostname(), MAX_RUNTIME_TAG: str(max_runtime_sec(seconds)),
    })
    url = metrics_url(settings)
    context.log.info(f"capture {','.join(settings.symbols)} for {seconds:.0f} s from "
                     f"{settings.ws_base_url} / {settings.rest_base_url} into {settings.data_dir}; "
                     f"metrics at {url}")

    q: queue.Queue = queue.Queue()
    logger = logging.getLogger(f"ofi_cvd_harvest.dagster_run.{context.run_id[:8]}")
    logger.setLevel(settings.log_level)
    logger.propagate = False
    handler = _QueueHandler(q)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)

    stop = threading.Event()
    outcome: dict[str, Any] = {}

    # Completion is an Event, not thread.join(): a signal raised inside join() makes CPython
    # 3.11 mark the still-running thread as stopped (bpo-45274), and we must keep waiting.
    done = threading.Event()

    def worker() -> None:
        try:
            outcome["summary"] = run_capture_sync(settings, run_seconds=seconds,
                                                  stop_event=stop, log=logger)
        except BaseException as exc:  # handed to the op's thread, which re-raises it
            outcome["error"] = exc
        finally:
            done.set()

    start = time.time()
    thread = threading.Thread(target=worker, name="capture", daemon=True)
    thread.start()
    try:
        while not done.wait(0.5):
            _drain(q, context.log)
    except BaseException:  # DagsterExecutionInterruptedError (termination), KeyboardInterrupt
        stop.set()
        with _shielded():  # a repeated SIGINT/SIGTERM must not cut the finalisation short
            context.log.warning("run terminated: stopping the capture (finalising files, "
                                "writing the checkpoint)")
            deadline = time.time() + STOP_GRACE_SEC
            while not done.wait(0.5) and time.time() < deadline:
                _drain(q, context.log)
            _drain(q, context.log)
            context.log.warning("capture stopped cleanly" if done.is_set()
                                else f"capture did not stop within {STOP_GRACE_SEC:.0f} s")
        raise
    finally:
        stop.set()
        _drain(q, context.log)
        logger.removeHandler(handler)
    if "error" in outcome:
        raise outcome["error"]
    end = time.time()
    summary = _summary_dict(outcome.get("summary"))
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
