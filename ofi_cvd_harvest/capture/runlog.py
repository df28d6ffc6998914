"""Run log ``artifacts/run_logs/harvest_YYYYMMDD_HHMM.log`` plus an optional caller logger
(Dagster's run log), attached for the duration of one capture run."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

LOGGER_NAME = "ofi_cvd_harvest.capture"
FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"


class _Forward(logging.Handler):
    """Copies records to another logger-like object (e.g. DagsterLogManager)."""

    def __init__(self, target) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.target.log(record.levelno, record.getMessage())
        except Exception:  # never let a foreign logger break the capture
            pass


class RunLog:
    _seq = 0

    def __init__(self, artifacts_dir: str | Path, level: str = "INFO", forward=None):
        now = dt.datetime.now(dt.timezone.utc)
        self.path = Path(artifacts_dir) / "run_logs" / f"harvest_{now:%Y%m%d_%H%M}.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one logger per run: concurrent captures in one process keep separate run logs
        RunLog._seq += 1
        self.logger = logging.getLogger(f"{LOGGER_NAME}.run{RunLog._seq}")
        self.logger.setLevel(level.upper())
        fmt = logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
        fmt.converter = __import__("time").gmtime
        self._handlers: list[logging.Handler] = []
        fh = logging.FileHandler(self.path, encoding="utf-8")
        fh.setFormatter(fmt)
        self._handlers.append(fh)
        if forward is not None and forward is not self.logger:
            self._handlers.append(_Forward(forward))
        for h in self._handlers:
            self.logger.addHandler(h)

    def close(self) -> None:
        for h in self._handlers:
            self.logger.removeHandler(h)
            h.close()
        self._handlers.clear()
        logging.Logger.manager.loggerDict.pop(self.logger.name, None)  # no leak per run
