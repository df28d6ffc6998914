"""Run the capture in a worker thread while the calling thread stays responsive to termination
(the Dagster capture op; docs/dagster.md).

Why a worker thread: the capture is an asyncio program; running it in a thread lets the
caller's main thread receive Dagster's termination (``DagsterExecutionInterruptedError``, a
``BaseException`` raised in the main thread on SIGINT/SIGTERM). On termination we set the
capture's stop event, wait for it to finalise open files and write the checkpoint, and
*re-raise* so the run ends CANCELED/FAILURE (never swallowed). The capture's log records are
queued by a handler and forwarded to the caller's log from the main thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from typing import Any

from ..settings import Settings
from .runner import run_capture_sync

STOP_GRACE_SEC = 120.0  # how long a terminated run waits for the capture to finalise


class QueueHandler(logging.Handler):
    """Collects records from any thread; the main thread forwards them (:func:`drain`)."""

    def __init__(self, q: queue.Queue):
        super().__init__()
        self.q = q

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.q.put_nowait((record.levelno, self.format(record)))
        except Exception:  # logging must never break the capture
            pass


def drain(q: queue.Queue, log: Any) -> None:
    """Forward queued records to ``log`` (anything with ``log(level, msg)``)."""
    while True:
        try:
            level, msg = q.get_nowait()
        except queue.Empty:
            return
        log.log(level, msg)


@contextlib.contextmanager
def shielded():
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


def run_capture_in_thread(settings: Settings, seconds: float, log: Any, *, name: str = "capture",
                          grace_sec: float = STOP_GRACE_SEC) -> Any:
    """Run the capture for ``seconds`` in a worker thread, forwarding its log to ``log`` (needs
    ``log(level, msg)`` and ``warning(msg)``, e.g. Dagster's ``context.log``); returns its
    summary. An interrupt of the waiting thread stops the capture cleanly, then is re-raised."""
    q: queue.Queue = queue.Queue()
    logger = logging.getLogger(f"ofi_cvd_harvest.dagster_run.{name}")
    logger.setLevel(settings.log_level)
    logger.propagate = False
    handler = QueueHandler(q)
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
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=worker, name="capture", daemon=True)
    thread.start()
    try:
        while not done.wait(0.5):
            drain(q, log)
    except BaseException:  # DagsterExecutionInterruptedError (termination), KeyboardInterrupt
        stop.set()
        with shielded():  # a repeated SIGINT/SIGTERM must not cut the finalisation short
            log.warning("run terminated: stopping the capture (finalising files, "
                        "writing the checkpoint)")
            deadline = time.time() + grace_sec
            while not done.wait(0.5) and time.time() < deadline:
                drain(q, log)
            drain(q, log)
            log.warning("capture stopped cleanly" if done.is_set()
                        else f"capture did not stop within {grace_sec:.0f} s")
        raise
    finally:
        stop.set()
        drain(q, log)
        logger.removeHandler(handler)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("summary")
