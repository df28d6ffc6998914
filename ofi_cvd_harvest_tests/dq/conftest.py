from __future__ import annotations

import pytest

from ofi_cvd_harvest.settings import load_settings

from .dataset import build_partition


@pytest.fixture
def settings(tmp_path):
    return load_settings(env={}, data_dir=tmp_path / "data")


@pytest.fixture
def clean(tmp_path):
    """A clean date × symbol partition (raw + derived) under tmp_path/data."""
    return build_partition(tmp_path / "data")
