"""The code location from the command line, as users script it (subprocesses, real instance)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from .rawfixtures import write_raw

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
KINDS = ["prices", "cvd", "ofi", "fusion", "events"]


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")  # the shipped instance config
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATA_DIR": str(tmp_path / "data")}
    env.pop("OFI_CVD_CAPTURE_AUTOSTART", None)
    return env


def _run(args: list[str], env, tmp_path) -> subprocess.CompletedProcess:
    proc = subprocess.run([DAGSTER, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _materialized(env, kind: str) -> set[str]:
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    try:
        with dg.DagsterInstance.get() as instance:
            return instance.get_materialized_partitions(dg.AssetKey(kind))
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = old


def test_definitions_validate(tmp_path):
    proc = _run(["definitions", "validate", "-m", "ofi_cvd_harvest.definitions"], _env(tmp_path), tmp_path)
    assert "Validation successful" in proc.stdout + proc.stderr


def test_workspace_yaml_names_the_code_location():
    """workspace.yaml is parsed by Dagster's own loader (the module it names is what
    test_definitions_validate validates)."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    (origin,) = location_origins_from_yaml_paths([str(ROOT / "workspace.yaml")])
    assert origin.location_name == "ofi_cvd_harvest"
    assert origin.loadable_target_origin.module_name == "ofi_cvd_harvest.definitions"


@pytest.mark.parametrize("how", ["job_execute", "asset_materialize"])
def test_derive_partition_from_cli(tmp_path, how):
    pytest.importorskip("ofi_cvd_harvest.signals.derive")
    env = _env(tmp_path)
    write_raw(tmp_path / "data", "2024-07-19", "BTCUSDT", minutes=6)
    write_raw(tmp_path / "data", "2024-07-19", "ETHUSDT", minutes=2, seed=2)
    if how == "job_execute":
        _run(["job", "execute", "-m", "ofi_cvd_harvest.definitions", "-j", "derive_job",
              "--tags", json.dumps({"dagster/partition": "2024-07-19|BTCUSDT"})], env, tmp_path)
    else:
        _run(["asset", "materialize", "-m", "ofi_cvd_harvest.definitions",
              "--select", ",".join(KINDS), "--partition", "2024-07-19|BTCUSDT"], env, tmp_path)
    base = tmp_path / "data" / "ofi_cvd" / "date=2024-07-19"
    for kind in KINDS:
        assert pq.read_table(base / "symbol=BTCUSDT" / f"kind={kind}").num_rows > 0
        assert _materialized(env, kind) == {"2024-07-19|BTCUSDT"}
    assert not (base / "symbol=ETHUSDT").exists()  # only the requested partition
