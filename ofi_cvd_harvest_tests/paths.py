"""Where the third-party recordings are: ``$OFI_CVD_REALDATA``, else ``shared/realdata`` beside
the repository (the developers' and CI's layout), else ``/work/shared/realdata``."""

import os
from pathlib import Path


def _find() -> Path:
    env = os.environ.get("OFI_CVD_REALDATA")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "shared" / "realdata"
    return beside if beside.is_dir() else Path("/work/shared/realdata")


REALDATA = _find()
HFT = REALDATA / "hftbacktest_usdm"
