"""Hostile and broken settings (README.md "Settings"): each fails at load with ONE line naming the
setting and what is allowed; through the CLI that is exit 2 and a single stderr line."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from ofi_cvd_harvest.settings import (BY_KEY, TABLE, Settings, SettingsError, check_value,
                                      load_settings)
from ofi_cvd_harvest.settings.kinds import Num

ROOT = Path(__file__).resolve().parent.parent


def cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "system.yaml"
    p.write_text(text)
    return p


def refused(*args, **kwargs) -> str:
    """The error message of a load that must fail; it is exactly one line."""
    with pytest.raises(SettingsError) as err:
        load_settings(*args, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg, msg
    return msg


def section_yaml(section: str, body: str) -> str:
    """``body`` (one ``key: value`` line) placed in the dotted ``section`` of data_harvest."""
    parts = ["data_harvest"] + ([p for p in section.split(".") if p] if section else [])
    lines = [" " * 2 * i + f"{p}:" for i, p in enumerate(parts)]
    return "\n".join(lines) + "\n" + " " * 2 * len(parts) + body + "\n"


# -- unknown keys, everywhere, with a suggestion ----------------------------------------------

@pytest.mark.parametrize("text,named,suggested", [
    ("data_harvest:\n  parquet_rotate_secs: 5\n", "data_harvest.parquet_rotate_secs",
     "data_harvest.parquet_rotate_sec"),
    ("data_harvest:\n  exchange:\n    ws_base_ur: ws://127.0.0.1:9\n",
     "data_harvest.exchange.ws_base_ur", "data_harvest.exchange.ws_base_url"),
    ("data_harvest:\n  websockets:\n    ping_interval: 5\n", "data_harvest.websockets",
     "data_harvest.websocket"),
    # the typo that made the whole file ignored and pointed the capture at the real exchange
    ("data_harvst:\n  exchange:\n    ws_base_url: ws://127.0.0.1:9\n", "data_harvst",
     "data_harvest"),
    ("parquet_rotate_secs: 5\ndata_harvest: {}\n", "parquet_rotate_secs",
     "data_harvest.parquet_rotate_sec"),
    ("data_harvest:\n  ping_interval: 5\n", "data_harvest.ping_interval",     # wrong section
     "data_harvest.websocket.ping_interval"),
    ("data_harvest:\n  acceptance_criteria: {}\n", "data_harvest.acceptance_criteria",
     "data_harvest.data_quality.acceptance_criteria"),
])
def test_unknown_key_is_refused_with_a_suggestion(tmp_path, text, named, suggested):
    msg = refused(cfg(tmp_path, text), env={})
    assert f"unknown setting {named} " in msg
    assert f"did you mean {suggested}?" in msg


SECTIONS = sorted({e.key.rsplit(".", 1)[0] if "." in e.key else "" for e in TABLE}
                  | {"data_quality"})


@pytest.mark.parametrize("section", SECTIONS)
def test_unknown_key_in_every_section(tmp_path, section):
    msg = refused(cfg(tmp_path, section_yaml(section, "qqq_zzz: 1")), env={})
    full = ".".join(["data_harvest"] + ([section] if section else []) + ["qqq_zzz"])
    assert f"unknown setting {full} (allowed here: " in msg


def test_hostile_key_stays_one_short_line(tmp_path):
    msg = refused(cfg(tmp_path, 'data_harvest:\n  "a\\nb": 1\n'), env={})
    assert "unknown setting data_harvest.'a\\nb'" in msg
    msg = refused(cfg(tmp_path, "data_harvest:\n  " + "x" * 1000 + ": 2\n"), env={})
    assert len(msg) < 400


def test_key_given_twice_is_refused(tmp_path):
    text = "data_harvest:\n  websocket:\n    ping_interval: 5\n  websocket:\n    heartbeat_timeout: 9\n"
    msg = refused(cfg(tmp_path, text), env={})
    assert "'websocket' appears twice" in msg and "line 4" in msg


def test_known_keys_in_their_sections_load(tmp_path):
    """The refusals above are not refusing everything: the shipped file loads, and a file
    naming settings in their right places gives those values."""
    text = ("data_harvest:\n  parquet_rotate_sec: 5\n  exchange:\n    ws_base_url: ws://127.0.0.1:9\n"
            "  websocket:\n    reconnect_base_sec: 0.01\n  data_quality:\n"
            "    acceptance_criteria:\n      max_duplicate_rate: 0.01\n  signals: {}\n")
    s = load_settings(cfg(tmp_path, text), env={})
    assert (s.parquet_rotate_sec, s.ws_base_url, s.reconnect_base_sec) == (5.0, "ws://127.0.0.1:9", 0.01)
    assert s.acceptance.max_duplicate_rate == 0.01
    assert load_settings(ROOT / "config" / "system.yaml", env={}) == Settings()


# -- OFI_CVD_CONFIG --------------------------------------------------------------------------

def test_missing_ofi_cvd_config_file_is_refused(tmp_path):
    msg = refused(env={"OFI_CVD_CONFIG": str(tmp_path / "nope.yaml")})
    assert msg.startswith("setting OFI_CVD_CONFIG: ") and "file not found" in msg


def test_ofi_cvd_config_file_is_used(tmp_path):
    p = cfg(tmp_path, "data_harvest:\n  dedup_lru: 64\n")
    assert load_settings(env={"OFI_CVD_CONFIG": str(p)}).dedup_lru == 64
    p.write_text("data_harvest:\n  dedup_lru: 8\n")
    assert "setting dedup_lru: invalid value 8" in refused(env={"OFI_CVD_CONFIG": str(p)})


# -- ranges ----------------------------------------------------------------------------------

@pytest.mark.parametrize("section,line,named,allowed", [
    ("websocket", "reconnect_base_sec: 0", "websocket.reconnect_base_sec", "number 0.01..60"),
    ("websocket", "reconnect_max_sec: -5", "websocket.reconnect_max_sec", "number 0.01..3600"),
    ("websocket", "heartbeat_timeout: -1", "websocket.heartbeat_timeout", "number > 0 and <= 3600"),
    ("websocket", "ping_interval: 0", "websocket.ping_interval", "number > 0 and <= 3600"),
    ("websocket", "rollover_sec: 86400", "websocket.rollover_sec", "number > 0 and < 86400"),
    ("", "parquet_rotate_sec: 0", "parquet_rotate_sec", "number > 0 and <= 86400"),
    ("", "dedup_lru: 100000000", "dedup_lru", "integer 16..1048576"),
    ("", "run_hours: .nan", "run_hours", "number > 0"),
    ("", "run_hours: .inf", "run_hours", "number > 0"),
    ("", "run_hours: true", "run_hours", "number > 0"),
    ("monitoring", "prometheus_port: true", "monitoring.prometheus_port", "integer 0..65535 (0 = off)"),
    ("monitoring", "prometheus_port: 65536", "monitoring.prometheus_port", "integer 0..65535 (0 = off)"),
    ("monitoring", "prometheus_port: 80.5", "monitoring.prometheus_port", "integer 0..65535 (0 = off)"),
    ("reliability", "error_cooldown_sec: 0", "reliability.error_cooldown_sec", "number > 0"),
    ("reliability", "segment_flush_sec: -1", "reliability.segment_flush_sec", "number > 0 and <= 60"),
    ("signals", "half_life_sec: 0", "signals.half_life_sec", "number > 0"),
    ("signals", "scale_fast_weight: 1.5", "signals.scale_fast_weight", "number 0..1"),
    ("book", "levels: 7", "book.levels", "one of 5, 10, 20"),
    ("exchange", "ws_base_url: http://x", "exchange.ws_base_url", "ws:// or wss:// URL"),
])
def test_value_out_of_range_names_setting_and_range(tmp_path, section, line, named, allowed):
    msg = refused(cfg(tmp_path, section_yaml(section, line)), env={})
    assert msg.startswith(f"setting {named}: invalid value ")
    assert msg.endswith(f"allowed: {allowed})")


def test_reconnect_max_below_base_is_refused(tmp_path):
    text = section_yaml("websocket", "reconnect_base_sec: 2") + "    reconnect_max_sec: 1\n"
    msg = refused(cfg(tmp_path, text), env={})
    assert msg == ("setting websocket.reconnect_max_sec: invalid value 1.0 "
                   "(allowed: >= websocket.reconnect_base_sec (2.0))")


# every interval, back-off and time-out: zero and negative are refused, from file and env
INTERVALS = [
    "run_hours", "parquet_rotate_sec", "websocket.ping_interval", "websocket.heartbeat_timeout",
    "websocket.reconnect_base_sec", "websocket.reconnect_max_sec", "websocket.rollover_sec",
    "reliability.error_cooldown_sec", "reliability.clock_check_interval_sec",
    "reliability.segment_flush_sec", "data_quality.precheck_minutes", "signals.half_life_sec",
    "signals.fast_half_life_sec", "signals.silence_sec", "signals.regime_window_sec",
    "signals.regime_half_life_sec", "signals.divergence_window_sec", "signals.fusion_tolerance_ms",
]


@pytest.mark.parametrize("key", INTERVALS)
@pytest.mark.parametrize("value", ["0", "-5", "-0.001"])
def test_zero_or_negative_interval_is_refused(tmp_path, key, value):
    section, _, leaf = key.rpartition(".")
    msg = refused(cfg(tmp_path, section_yaml(section, f"{leaf}: {value}")), env={})
    assert msg.startswith(f"setting {key}: invalid value ") and "allowed: " in msg
    env = BY_KEY[key].env
    if env:
        msg = refused(env={env: value})
        assert msg.startswith(f"setting {env} ({key}): invalid value ")


@pytest.mark.parametrize("value", ["1e8", "1e12", "100000000", "1048577", "15", "-1", "1.5", "nan"])
def test_dedup_lru_too_large_or_invalid(value):
    msg = refused(env={"DEDUP_LRU": value})
    assert msg.startswith("setting DEDUP_LRU (dedup_lru): invalid value ")
    assert "allowed: integer 16..1048576" in msg


def test_dedup_lru_bounds_are_accepted():
    assert load_settings(env={"DEDUP_LRU": "1048576"}).dedup_lru == 1 << 20
    assert load_settings(env={"DEDUP_LRU": "16"}).dedup_lru == 16


@pytest.mark.parametrize("var,value", [
    ("RUN_HOURS", "inf"), ("RUN_HOURS", "nan"), ("RUN_HOURS", "0"), ("RUN_HOURS", "-1"),
    ("PROMETHEUS_PORT", "true"), ("PROMETHEUS_PORT", "-1"), ("PARQUET_ROTATE_SEC", "0"),
    ("WSS_PING_INTERVAL", "-1"), ("LOG_LEVEL", "LOUD"), ("SYMBOLS", "BTCUSDT,btcusdt"),
    ("SYMBOLS", ","), ("OFI_CVD_CONFIG", "/nonexistent/system.yaml"),
])
def test_bad_env_value(var, value):
    assert refused(env={var: value}).startswith(f"setting {var}")


def test_prometheus_port_zero_means_off_and_is_allowed():
    assert load_settings(env={"PROMETHEUS_PORT": "0"}).prometheus_port == 0


def test_typed_override_is_validated_too():
    """CLI flags and Settings.replace go through the same table."""
    assert "setting monitoring.prometheus_port (PROMETHEUS_PORT): invalid value True" in refused(
        env={}, prometheus_port=True)
    assert refused(env={}, symbols=("BTC/USD",)).startswith(
        "setting symbols (SYMBOLS): invalid value ('BTC/USD',) (symbol 'BTC/USD'; allowed: ")
    with pytest.raises(SettingsError, match=r"^setting run_hours \(RUN_HOURS\): invalid value inf "):
        Settings().replace(run_hours=math.inf)


@pytest.mark.parametrize("name,value", [("--run-seconds", -5.0), ("--run-seconds", 0.0),
                                        ("--run-seconds", math.nan), ("--run-hours", math.inf)])
def test_run_duration_flags_positive_finite(name, value):
    with pytest.raises(SettingsError) as err:
        check_value(name, value, "run_hours")
    assert str(err.value).startswith(f"setting {name}: invalid value ")
    assert str(err.value).endswith("allowed: number > 0)")
    assert check_value(name, 0.5, "run_hours") == 0.5


# -- structure -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,start", [
    ("data_harvest:\n  signals: [1, 2]\n", "setting signals: invalid value [1, 2] (a list; "),
    ("- 1\n- 2\n", "config {p}: the document is a list "),
    ("42\n", "config {p}: the document is a number "),
    ("just a string\n", "config {p}: the document is a string "),
    ("data_harvest: 5\n", "setting data_harvest: invalid value 5 "),
    ("data_harvest:\n  websocket: fast\n", "setting websocket: invalid value 'fast' "),
    ("data_harvest:\n  run_hours: {a: 1}\n", "setting run_hours: invalid value {'a': 1} "),
    ("data_harvest:\n  run_hours:\n", "setting run_hours: invalid value None "),
    ("data_harvest:\n  symbols: {BTCUSDT: 1}\n", "setting symbols: invalid value "),
    ("data_harvest:\n  signals:\n    ofi_level_weights: [0.5, x]\n",
     "setting signals.ofi_level_weights: invalid value "),
    ("data_harvest:\n  symbols: [BTCUSDT\n", "config {p}: not valid YAML at line 3 "),
    ("data_harvest:\n  ? [a, b]\n  : 1\n", "config {p}: not valid YAML"),
])
def test_wrong_structure_is_one_line(tmp_path, text, start):
    p = cfg(tmp_path, text)
    assert refused(p, env={}).startswith(start.replace("{p}", str(p)))


def test_empty_file_and_empty_sections_mean_defaults(tmp_path):
    assert load_settings(cfg(tmp_path, ""), env={}) == Settings()
    assert load_settings(cfg(tmp_path, "data_harvest:\n  signals:\n"), env={}) == Settings()


# -- the table itself ------------------------------------------------------------------------

def test_table_is_consistent():
    Settings().replace()                                     # the defaults pass validation
    keys = [e.key for e in TABLE]
    envs = [e.env for e in TABLE if e.env]
    assert len(set(keys)) == len(keys) and len(set(envs)) == len(envs)
    for group in ("", "signals", "acceptance"):
        names = [e.name for e in TABLE if e.group == group]
        assert len(set(names)) == len(names)
    for e in TABLE:
        assert e.doc and "\n" not in e.doc and "|" not in e.kind.allowed.replace("\\|", "")
        if isinstance(e.kind, Num) and e.kind.integer:
            assert type(e.default) is int, e.key


def test_original_guide_environment_variables_are_in_the_table():
    guide = {"SYMBOLS", "RUN_HOURS", "PARQUET_ROTATE_SEC", "WSS_PING_INTERVAL", "DEDUP_LRU",
             "Z_MODE", "SCALE_MODE", "MAD_MULTIPLIER", "SCALE_FAST_WEIGHT", "HALF_LIFE_SEC",
             "WINSOR_LIMIT", "PROMETHEUS_PORT", "LOG_LEVEL"}
    assert guide <= {e.env for e in TABLE}


def test_settings_pickle_round_trip():
    """Dagster's multiprocess executor may pickle them; the generated classes must resolve."""
    s = load_settings(env={"SYMBOLS": "SOLUSDT"})
    assert pickle.loads(pickle.dumps(s)) == s


# -- through the real CLI process ------------------------------------------------------------

def _cli(tmp_path, *argv, env=None):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
            # should validation ever let a capture start, it must not reach the real exchange
            "WS_BASE_URL": "ws://127.0.0.1:9", "REST_BASE_URL": "http://127.0.0.1:9",
            "PROMETHEUS_PORT": "0"}
    proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", *argv],
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return proc.returncode, lines


@pytest.mark.parametrize("extra,expect", [
    (["--run-seconds", "-5"], "setting --run-seconds: invalid value -5.0"),
    (["--run-seconds", "0"], "setting --run-seconds: invalid value 0.0"),
    (["--run-seconds", "nan"], "setting --run-seconds: invalid value nan"),
    (["--run-hours", "inf"], "setting --run-hours: invalid value inf"),
])
def test_cli_capture_bad_duration_exit_2_one_line(tmp_path, extra, expect):
    rc, lines = _cli(tmp_path, "capture", "--data-dir", "d", "--artifacts-dir", "a", *extra)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"ofi-cvd-harvest: {expect} ") and "allowed: number > 0" in lines[0]
    assert not (tmp_path / "d").exists()


def test_cli_capture_misspelt_section_exit_2_one_line(tmp_path):
    p = cfg(tmp_path, "data_harvst:\n  exchange:\n    ws_base_url: ws://127.0.0.1:9\n")
    rc, lines = _cli(tmp_path, "capture", "--run-seconds", "1", "--config", str(p))
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0] == f"ofi-cvd-harvest: config {p}: unknown setting data_harvst (did you mean data_harvest?)"


@pytest.mark.parametrize("env,expect", [
    ({"OFI_CVD_CONFIG": "missing.yaml"}, "setting OFI_CVD_CONFIG: invalid value 'missing.yaml'"),
    ({"DEDUP_LRU": "1e12"}, "setting DEDUP_LRU (dedup_lru): invalid value '1e12'"),
])
def test_cli_bad_environment_exit_2_one_line(tmp_path, env, expect):
    rc, lines = _cli(tmp_path, "capture", "--run-seconds", "1", env=env)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"ofi-cvd-harvest: {expect} ")


def test_cli_settings_command(tmp_path):
    p = cfg(tmp_path, "data_harvest:\n  websocket:\n    heartbeat_timeout: -1\n")
    rc, lines = _cli(tmp_path, "settings", "--config", str(p))
    assert rc == 2 and lines == ["ofi-cvd-harvest: setting websocket.heartbeat_timeout: invalid "
                                 "value -1 (allowed: number > 0 and <= 3600)"]
    p.write_text("data_harvest:\n  websocket:\n    heartbeat_timeout: 7\n")
    proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "settings", "--config", str(p)],
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DEDUP_LRU": "64"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    out = {ln.split()[0]: ln for ln in proc.stdout.splitlines()}
    assert len(out) == len(TABLE)
    assert out["websocket.heartbeat_timeout"].endswith(f"7.0  ({p})")
    assert out["dedup_lru"].endswith("64  (DEDUP_LRU)")
    assert out["book.levels"].endswith("10  (default)")


def test_yaml_merge_keys_still_work_and_may_be_overridden(tmp_path):
    text = ("data_harvest:\n  websocket: &w\n    ping_interval: 5\n  signals:\n"
            "    <<: {half_life_sec: 100, winsor_limit: 3}\n    winsor_limit: 4\n")
    s = load_settings(cfg(tmp_path, text), env={})
    assert (s.ping_interval, s.signals.half_life_sec, s.signals.winsor_limit) == (5.0, 100.0, 4.0)


@pytest.mark.parametrize("config", [{"run_seconds": math.nan}, {"run_seconds": -5},
                                    {"run_seconds": 0}, {"run_hours": math.inf}])
def test_dagster_capture_duration_positive_finite(config):
    """The capture op's run config gets the same rule as the CLI flags (nan would run forever)."""
    dg = pytest.importorskip("dagster")
    from ofi_cvd_harvest.orchestration.jobs import CaptureConfig, effective_settings
    from ofi_cvd_harvest.orchestration.resources import HarvestSettings

    with pytest.raises(dg.Failure, match="finite number > 0"):
        effective_settings(HarvestSettings(), CaptureConfig(**config))
    assert effective_settings(HarvestSettings(), CaptureConfig(run_seconds=0.5))[1] == 0.5


def test_cli_demo_bad_duration_exit_2_one_line(tmp_path):
    rc, lines = _cli(tmp_path, "demo", "--run-seconds", "nan", "--data-dir", "d")
    assert rc == 2 and lines == ["ofi-cvd-harvest: setting --run-seconds: invalid value nan "
                                 "(not finite; allowed: number > 0)"]
    assert not (tmp_path / "d").exists()
