"""Settings: file + env overrides, validation naming the setting."""

import subprocess
import sys

import pytest

from ofi_cvd_harvest.settings import SettingsError, load_settings


def test_defaults_from_config_file():
    s = load_settings(env={})
    assert s.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.parquet_rotate_sec == 60
    assert s.acceptance.max_latency_p99_ms == 120
    assert s.signals.ofi_level_weights == (0.4, 0.25, 0.2, 0.1, 0.05)


def test_env_overrides_file():
    s = load_settings(env={"SYMBOLS": "solusdt, BNBUSDT", "Z_MODE": "level", "HALF_LIFE_SEC": "300",
                           "DATA_DIR": "/tmp/x", "PROMETHEUS_PORT": "9109"})
    assert s.symbols == ("SOLUSDT", "BNBUSDT")
    assert s.signals.z_mode == "level"
    assert s.signals.half_life_sec == 300
    assert str(s.data_dir) == "/tmp/x"
    assert s.prometheus_port == 9109


@pytest.mark.parametrize("var,value", [
    ("SYMBOLS", "btc/usd"), ("SYMBOLS", "../../etc"), ("RUN_HOURS", "-1"), ("RUN_HOURS", "abc"),
    ("Z_MODE", "foo"), ("SCALE_MODE", "x"), ("DEDUP_LRU", "1.5"), ("PROMETHEUS_PORT", "70000"),
    ("WINSOR_LIMIT", "nan"), ("WS_BASE_URL", "http://x"), ("BOOK_SOURCE", "l3"),
])
def test_bad_env_value_names_the_setting(var, value):
    with pytest.raises(SettingsError) as err:
        load_settings(env={var: value})
    assert var in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_file(tmp_path):
    cfg = tmp_path / "system.yaml"
    cfg.write_text("data_harvest:\n  signals:\n    winsor_limitt: 3\n")
    with pytest.raises(SettingsError, match="winsor_limitt"):
        load_settings(cfg, env={})
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.yaml", env={})


def test_cli_bad_setting_exits_nonzero_with_one_line(tmp_path):
    env = {"SYMBOLS": "btc/usd", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--run-seconds", "1",
                           "--data-dir", str(tmp_path / "d"), "--artifacts-dir", str(tmp_path / "a")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.strip().splitlines() if l]
    assert len(lines) == 1 and "SYMBOLS" in lines[0]


def test_event_settings_from_the_file():
    s = load_settings(env={})
    assert (s.signals.rearm_sec, s.signals.cooldown_sec, s.signals.divergence_cooldown_sec) == (5, 120, 900)
    assert s.acceptance.max_events_per_hour == 300


@pytest.mark.parametrize("section,key,value", [
    ("signals", "rearm_sec", -1), ("signals", "cooldown_sec", -0.5),
    ("signals", "divergence_cooldown_sec", -900), ("signals", "cooldown_sec", "soon"),
    ("signals", "fusion_rearm", 2.5), ("signals", "extreme_rearm", 0),
    ("data_quality:\n    acceptance_criteria", "max_events_per_hour", 0),
])
def test_event_settings_are_range_checked(tmp_path, section, key, value):
    cfg = tmp_path / "system.yaml"
    cfg.write_text(f"data_harvest:\n  {section}:\n      {key}: {value}\n")
    with pytest.raises(SettingsError, match=key) as err:
        load_settings(cfg, env={})
    assert "\n" not in str(err.value)
