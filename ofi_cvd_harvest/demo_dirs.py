"""The demo's directories: each ``make demo`` starts from empty ones, and never deletes what it
did not write.

Why: the demo's simulator is a new exchange each run, whose trade ids start again where the
previous one's did. A second run into the same directories resumed from the first run's
checkpoint (ids of another exchange) and put two captures minutes apart into one date ×
symbol partition, which the DQ gate rightly failed (``empty_bucket_rate``). So a run starts
only in empty directories, and marks them when it ends (``MARKER`` in the data directory: the
artifacts directory, every file it left with its size and modification time). The next run
removes that output only if every file in both is one of those, unchanged. Anything else (a
capture through the UI since, files moved in, a damaged marker) is left alone and the demo
stops with a clear message.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

MARKER = ".demo.json"
CHECKOUT_FILES = frozenset({".gitkeep", "README.md"})   # the repository's own files in data/


class DirsInUse(Exception):
    """The directories hold files that the last demo run did not leave as they are."""


def _children(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return [p for p in d.iterdir() if p.name not in CHECKOUT_FILES]


def _files(d: Path) -> list[Path]:
    out = []
    for top in _children(d):
        if top.is_dir() and not top.is_symlink():
            out += [p for p in top.rglob("*") if not p.is_dir() or p.is_symlink()]
        else:
            out.append(top)
    return out


def _stat(p: Path) -> list[int]:
    st = p.lstat()
    return [st.st_size, st.st_mtime_ns]


def _marked(data_dir: Path, artifacts_dir: Path) -> dict | None:
    """The marker, if it is whole and names ``artifacts_dir``."""
    try:
        doc = json.loads((data_dir / MARKER).read_text())
        float(doc["finished"]), dict(doc["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if doc.get("artifacts_dir") == str(artifacts_dir.resolve()) else None


def claim(data_dir: Path, artifacts_dir: Path) -> str | None:
    """Make both directories empty for a demo run: None when they already are, a line saying
    what was removed when they held only files the previous demo run wrote, each with the size
    and modification time it left (a file moved in keeps an old time, so the time alone would
    not do); else :class:`DirsInUse` and nothing is touched."""
    data_dir, artifacts_dir = data_dir.resolve(), artifacts_dir.resolve()
    marker = data_dir / MARKER
    files = [p for p in _files(data_dir) + _files(artifacts_dir) if p != marker]
    if not files and not marker.exists():
        return None
    doc = _marked(data_dir, artifacts_dir)
    if doc is None:
        why = "they hold files, and no whole marker of a finished demo run"
    else:
        other = [p for p in files if doc["files"].get(str(p)) != _stat(p)]
        why = f"{other[0]} is not as the previous demo run left it" if other else None
    if why:
        raise DirsInUse(
            f"the demo starts from empty directories, and {data_dir} / {artifacts_dir} are not: "
            f"{why}. Nothing was removed. Run it with --data-dir and --artifacts-dir pointing "
            "to new directories, or remove these (`make clean`) if nothing in them is needed.")
    for d in (data_dir, artifacts_dir):
        for p in _children(d):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(doc["finished"])))
    return (f"removed the previous demo run's output ({len(files)} files, finished {when}) "
            f"from {data_dir} and {artifacts_dir}")


def mark(data_dir: Path, artifacts_dir: Path) -> None:
    """Record that a demo run wrote both directories, which files it left there, and when it
    finished (written last)."""
    data_dir, artifacts_dir = data_dir.resolve(), artifacts_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    files = {str(p): _stat(p) for p in _files(data_dir) + _files(artifacts_dir) if p != marker}
    tmp = data_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"artifacts_dir": str(artifacts_dir), "finished": time.time(),
                               "files": files}))
    os.replace(tmp, marker)
