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


@pytest.fixture
def data(tmp_path):
    """Two clean partitions (BTCUSDT, ETHUSDT with disjoint ids) under tmp_path/data."""
    root = tmp_path / "data"
    build_partition(root, symbol="BTCUSDT", seed=1)
    build_partition(root, symbol="ETHUSDT", seed=2, first_id=50_000)
    return root
