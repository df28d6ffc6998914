"""DATA_DIR may be an s3:// URL; anything else with a scheme, or a malformed URL, is refused
with one line naming the setting (exit 2 from the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ofi_cvd_harvest.settings import SettingsError, load_settings
from ofi_cvd_harvest.storage.objectstore import LakeUrl, data_root

ROOT = Path(__file__).resolve().parents[2]


def test_s3_url_is_a_data_root():
    s = load_settings(env={"DATA_DIR": "s3://lake//ofi/"})
    assert isinstance(s.data_dir, LakeUrl) and s.data_dir == "s3://lake/ofi"
    assert s.raw_dir == "s3://lake/ofi/raw" and s.derived_dir.parent == s.data_dir
    assert isinstance(load_settings(env={"DATA_DIR": "data"}).data_dir, Path)
    assert data_root("s3://b") == "s3://b" and isinstance(data_root("x/y"), Path)


@pytest.mark.parametrize("bad", ["gs://bucket/x", "s3://", "s3:///x", "s3://b/../x", "http://h/x"])
def test_bad_urls_are_refused_naming_the_setting(bad):
    with pytest.raises(SettingsError) as e:
        load_settings(env={"DATA_DIR": bad})
    assert "DATA_DIR" in str(e.value) and "\n" not in str(e.value)


def test_cli_bad_data_dir_url_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATA_DIR": "gs://bucket/x"}
    p = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "settings"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "DATA_DIR" in (p.stdout + p.stderr) and "s3://" in (p.stdout + p.stderr)
