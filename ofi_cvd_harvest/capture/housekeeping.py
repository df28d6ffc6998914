"""Start-up sweep of temp files a crash (or a full disk) left behind (docs/capture.md).

Every atomic write goes through a ``*.tmp`` file that is renamed into place; a process killed
(or a disk that filled) mid-write leaves it behind, and nothing else ever removes it. Raw temp
files are the capture's own and all go; derived ones (``ofi_cvd/``) and the checkpoint's
(``artifacts/state/``) go once they are older than a write could take, so a derivation
running beside the capture keeps the file it is writing.
"""

from __future__ import annotations

import logging
import os

from ..storage.fs import Storage

DERIVED_TMP_AGE_SEC = 3600.0   # a derived partition's file is written in seconds
STATE_TMP_AGE_SEC = 60.0       # a checkpoint temp file lives for milliseconds


def clean_stale_tmp(storage: Storage, artifacts_dir: str | os.PathLike,
                    log: logging.Logger) -> dict[str, int]:
    """Remove stale temp files under ``raw/``, ``ofi_cvd/`` and ``artifacts/state/``; returns
    how many per area (an unreadable area is logged and skipped: it may recover later)."""
    plan = [("raw", storage, "raw", 0.0),
            ("derived", storage, "ofi_cvd", DERIVED_TMP_AGE_SEC),
            ("state", Storage(artifacts_dir), "state", STATE_TMP_AGE_SEC)]
    out: dict[str, int] = {}
    for area, area_storage, rel, age in plan:
        try:
            removed = area_storage.remove_stale_tmp(rel, older_than_sec=age)
        except OSError as exc:
            log.warning("cannot scan %s for stale temp files: %s", area_storage.path(rel), exc)
            continue
        if removed:
            log.info("removed %d stale temp files under %s", len(removed), area_storage.path(rel))
        out[area] = len(removed)
    return out
