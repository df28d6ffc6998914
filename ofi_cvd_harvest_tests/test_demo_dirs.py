"""Each demo run starts from empty directories; it removes only the previous demo run's
untouched output and refuses, touching nothing, in every other case."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ofi_cvd_harvest import demo_dirs


def _demo_output(data: Path, art: Path) -> list[Path]:
    """What a demo run leaves: raw and derived files, a checkpoint, a report, a run log."""
    files = [data / "raw" / "date=2026-12-02" / "symbol=BTCUSDT" / "part-1.parquet",
             data / "quarantine" / "date=2026-12-02" / "dq.json",
             data / ".staging" / ".lock",
             art / "state" / "checkpoint.json",
             art / "dq_reports" / "dq_20261202_0132.json"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    return files


def _past(paths, seconds=5.0):
    """Date the files back, as a run that finished a moment ago left them."""
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


@pytest.fixture
def dirs(tmp_path):
    data, art = tmp_path / "data", tmp_path / "artifacts"
    data.mkdir()
    (data / ".gitkeep").write_text("")            # the checkout's own file stays
    return data, art


def test_empty_directories_are_claimed_as_they_are(dirs):
    data, art = dirs
    assert demo_dirs.claim(data, art) is None
    assert sorted(p.name for p in data.iterdir()) == [".gitkeep"]


def test_the_previous_runs_untouched_output_is_removed(dirs):
    data, art = dirs
    files = _demo_output(data, art)
    _past(files)
    demo_dirs.mark(data, art)
    msg = demo_dirs.claim(data, art)
    assert msg and f"({len(files)} files" in msg, msg
    assert sorted(p.name for p in data.iterdir()) == [".gitkeep"]
    assert list(art.iterdir()) == []
    assert demo_dirs.claim(data, art) is None       # and again: nothing left to remove


@pytest.mark.parametrize("case", ["touched", "same size rewritten", "added", "moved in, old time",
                                  "no marker", "damaged marker", "other artifacts dir",
                                  "foreign artifacts"])
def test_anything_else_is_refused_and_nothing_removed(dirs, tmp_path, case):
    data, art = dirs
    files = _demo_output(data, art)
    _past(files)
    demo_dirs.mark(data, art)
    if case == "touched":                           # e.g. a capture from the UI since
        time.sleep(0.05)                            # past the clock tick of the marker
        files[0].write_bytes(b"real data")
    elif case == "same size rewritten":
        time.sleep(0.05)                            # past the clock tick of the marker
        files[0].write_bytes(b"y")
    elif case in ("added", "moved in, old time"):
        new = data / "raw" / "date=2026-12-03" / "part-9.parquet"
        new.parent.mkdir(parents=True)
        new.write_bytes(b"real data")
        if case == "moved in, old time":            # mv keeps the time it had elsewhere
            _past([new], 3600)
        files.append(new)
    elif case == "no marker":
        (data / demo_dirs.MARKER).unlink()
    elif case == "damaged marker":
        (data / demo_dirs.MARKER).write_text('{"artifacts_dir": ')
    elif case == "other artifacts dir":
        doc = json.loads((data / demo_dirs.MARKER).read_text())
        (data / demo_dirs.MARKER).write_text(json.dumps({**doc, "artifacts_dir": "/elsewhere"}))
    else:                                            # a second artifacts dir, never the demo's
        art = tmp_path / "other_artifacts"
        files.append(art / "state" / "checkpoint.json")
        files[-1].parent.mkdir(parents=True)
        files[-1].write_text("{}")
    with pytest.raises(demo_dirs.DirsInUse, match="Nothing was removed"):
        demo_dirs.claim(data, art)
    assert all(f.exists() for f in files)


def test_a_foreign_directory_is_refused(dirs):
    data, art = dirs
    own = data / "my_notes.txt"
    own.write_text("keep me")
    with pytest.raises(demo_dirs.DirsInUse, match="no whole marker"):
        demo_dirs.claim(data, art)
    assert own.read_text() == "keep me"
