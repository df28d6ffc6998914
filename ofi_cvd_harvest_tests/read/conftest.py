from pathlib import Path

import pytest

from . import lake


@pytest.fixture(scope="package")
def data(tmp_path_factory) -> Path:
    """The lake of lake.py (built once for the package's tests; treat it as read-only)."""
    root = tmp_path_factory.mktemp("lake") / "data"
    lake.build(root)
    return root
