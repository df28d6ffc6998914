"""Typed, validated settings: ``config/system.yaml`` (``data_harvest``) overridden by env vars.

One loader for every entry point (CLI, capture, simulator clients, Dagster assets) so a value
means the same thing everywhere. Invalid values fail fast with :class:`SettingsError`, whose
message names the setting, because a 72-hour run must not discover a typo at hour 40.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "system.yaml"


class SettingsError(ValueError):
    """A setting is missing or invalid; ``str(err)`` is one line naming it."""


@dataclass(frozen=True)
class AcceptanceCriteria:
    max_empty_bucket_rate: float = 0.001
    max_duplicate_rate: float = 0.005
    max_latency_p99_ms: float = 120.0
    max_latency_p50_ms: float = 60.0
    min_events_per_72h: float = 1000.0
    min_winsor_effect: float = 0.1
    max_events_per_hour: float = 300.0   # signal events per symbol-hour above this: a warning


@dataclass(frozen=True)
class SignalSettings:
    z_mode: str = "delta"
    scale_mode: str = "hybrid"
    mad_multiplier: float = 1.8
    scale_fast_weight: float = 0.20
    half_life_sec: float = 600.0
    fast_half_life_sec: float = 60.0
    winsor_limit: float = 8.0
    floor_window: int = 200
    level_window: int = 150
    warmup_rows: int = 20
    silence_sec: float = 5.0
    silence_warmup_rows: int = 2
    ofi_levels: int = 5
    ofi_level_weights: tuple[float, ...] = (0.4, 0.25, 0.2, 0.1, 0.05)
    w_ofi: float = 0.6
    w_cvd: float = 0.4
    fusion_tolerance_ms: int = 5000
    regime_window_sec: float = 300.0
    regime_half_life_sec: float = 3600.0
    fusion_threshold: float = 2.0
    fusion_rearm: float = 1.0
    extreme_threshold: float = 3.0
    extreme_rearm: float = 1.0
    divergence_window_sec: float = 900.0
    # event state machines (docs/signals.md "Events"): re-arm after |z| < rearm level for
    # rearm_sec and cooldown_sec since that type and direction last fired
    rearm_sec: float = 5.0
    cooldown_sec: float = 120.0
    divergence_cooldown_sec: float = 900.0
    # derivation warm-up from the previous date: z engines start warmup_half_lives × max(half-life)
    # before 00:00 UTC, the regime warmup_half_lives × regime_half_life_sec (+ its window) before
    warmup_half_lives: float = 6.0


@dataclass(frozen=True)
class Settings:
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    run_hours: float = 72.0
    parquet_rotate_sec: float = 60.0
    dedup_lru: int = 8192
    data_dir: Path = Path("data")
    artifacts_dir: Path = Path("artifacts")
    log_level: str = "INFO"
    # exchange
    ws_base_url: str = "wss://fstream.binance.com"
    rest_base_url: str = "https://fapi.binance.com"
    max_streams_per_connection: int = 200
    rest_weight_limit_per_min: int = 2400
    # websocket
    ping_interval: float = 20.0
    heartbeat_timeout: float = 30.0
    reconnect_base_sec: float = 0.5
    reconnect_max_sec: float = 30.0
    rollover_sec: float = 82800.0
    # book
    book_source: str = "partial"
    book_levels: int = 10
    # reliability
    write_retries: int = 3
    max_errors_per_hour: int = 100
    error_cooldown_sec: float = 300.0
    clock_check_interval_sec: float = 600.0
    max_clock_drift_ms: float = 200.0
    segment_flush_sec: float = 1.0
    # monitoring
    prometheus_port: int = 8009
    prometheus_host: str = "127.0.0.1"
    # data quality
    precheck_minutes: float = 10.0
    acceptance: AcceptanceCriteria = field(default_factory=AcceptanceCriteria)
    signals: SignalSettings = field(default_factory=SignalSettings)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def derived_dir(self) -> Path:
        return self.data_dir / "ofi_cvd"

    def replace(self, **changes: Any) -> "Settings":
        """A validated copy with ``changes`` applied (e.g. CLI flags over the file)."""
        new = dataclasses.replace(self, **changes)
        validate(new)
        return new


# YAML path (under data_harvest) -> Settings attribute
_YAML_KEYS: dict[tuple[str, ...], str] = {
    ("symbols",): "symbols",
    ("run_hours",): "run_hours",
    ("parquet_rotate_sec",): "parquet_rotate_sec",
    ("dedup_lru",): "dedup_lru",
    ("data_dir",): "data_dir",
    ("artifacts_dir",): "artifacts_dir",
    ("log_level",): "log_level",
    ("exchange", "ws_base_url"): "ws_base_url",
    ("exchange", "rest_base_url"): "rest_base_url",
    ("exchange", "max_streams_per_connection"): "max_streams_per_connection",
    ("exchange", "rest_weight_limit_per_min"): "rest_weight_limit_per_min",
    ("websocket", "ping_interval"): "ping_interval",
    ("websocket", "heartbeat_timeout"): "heartbeat_timeout",
    ("websocket", "reconnect_base_sec"): "reconnect_base_sec",
    ("websocket", "reconnect_max_sec"): "reconnect_max_sec",
    ("websocket", "rollover_sec"): "rollover_sec",
    ("book", "source"): "book_source",
    ("book", "levels"): "book_levels",
    ("reliability", "write_retries"): "write_retries",
    ("reliability", "max_errors_per_hour"): "max_errors_per_hour",
    ("reliability", "error_cooldown_sec"): "error_cooldown_sec",
    ("reliability", "clock_check_interval_sec"): "clock_check_interval_sec",
    ("reliability", "max_clock_drift_ms"): "max_clock_drift_ms",
    ("reliability", "segment_flush_sec"): "segment_flush_sec",
    ("monitoring", "prometheus_port"): "prometheus_port",
    ("monitoring", "prometheus_host"): "prometheus_host",
    ("data_quality", "precheck_minutes"): "precheck_minutes",
}

# environment variable -> (section, attribute); section None = top level
ENV_VARS: dict[str, tuple[str | None, str]] = {
    "SYMBOLS": (None, "symbols"),
    "RUN_HOURS": (None, "run_hours"),
    "PARQUET_ROTATE_SEC": (None, "parquet_rotate_sec"),
    "WSS_PING_INTERVAL": (None, "ping_interval"),
    "DEDUP_LRU": (None, "dedup_lru"),
    "PROMETHEUS_PORT": (None, "prometheus_port"),
    "LOG_LEVEL": (None, "log_level"),
    "WS_BASE_URL": (None, "ws_base_url"),
    "REST_BASE_URL": (None, "rest_base_url"),
    "DATA_DIR": (None, "data_dir"),
    "ARTIFACTS_DIR": (None, "artifacts_dir"),
    "BOOK_SOURCE": (None, "book_source"),
    "Z_MODE": ("signals", "z_mode"),
    "SCALE_MODE": ("signals", "scale_mode"),
    "MAD_MULTIPLIER": ("signals", "mad_multiplier"),
    "SCALE_FAST_WEIGHT": ("signals", "scale_fast_weight"),
    "HALF_LIFE_SEC": ("signals", "half_life_sec"),
    "WINSOR_LIMIT": ("signals", "winsor_limit"),
}


def _coerce(name: str, value: Any, target: Any) -> Any:
    """Convert ``value`` to the type of the default ``target``; raise naming ``name``."""
    try:
        if isinstance(target, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(target, int) and not isinstance(target, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if isinstance(target, float):
            out = float(value)
            if not math.isfinite(out):
                raise ValueError(value)
            return out
        if isinstance(target, Path):
            return Path(str(value))
        if isinstance(target, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            if target and isinstance(target[0], float):
                return tuple(float(x) for x in items)
            return tuple(str(x).strip().upper() for x in items if str(x).strip())
        return str(value).strip()
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name}: invalid value {value!r}") from None


def _check(cond: bool, name: str, value: Any, why: str) -> None:
    if not cond:
        raise SettingsError(f"setting {name}: invalid value {value!r} ({why})")


def validate(s: Settings) -> None:
    """Raise :class:`SettingsError` for the first invalid setting."""
    _check(len(s.symbols) > 0, "SYMBOLS", s.symbols, "at least one symbol")
    for sym in s.symbols:
        _check(bool(SYMBOL_RE.match(sym)), "SYMBOLS", sym, "symbols match ^[A-Z0-9]{2,20}$")
    _check(len(set(s.symbols)) == len(s.symbols), "SYMBOLS", s.symbols, "duplicate symbol")
    _check(s.run_hours > 0, "RUN_HOURS", s.run_hours, "must be > 0")
    _check(s.parquet_rotate_sec > 0, "PARQUET_ROTATE_SEC", s.parquet_rotate_sec, "must be > 0")
    _check(s.ping_interval > 0, "WSS_PING_INTERVAL", s.ping_interval, "must be > 0")
    _check(s.dedup_lru >= 16, "DEDUP_LRU", s.dedup_lru, "must be >= 16")
    _check(1 <= s.prometheus_port <= 65535 or s.prometheus_port == 0, "PROMETHEUS_PORT",
           s.prometheus_port, "0 (off) or 1..65535")
    _check(s.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), "LOG_LEVEL",
           s.log_level, "DEBUG|INFO|WARNING|ERROR|CRITICAL")
    _check(s.ws_base_url.startswith(("ws://", "wss://")), "WS_BASE_URL", s.ws_base_url,
           "must start with ws:// or wss://")
    _check(s.rest_base_url.startswith(("http://", "https://")), "REST_BASE_URL", s.rest_base_url,
           "must start with http:// or https://")
    _check(1 <= s.max_streams_per_connection <= 200, "max_streams_per_connection",
           s.max_streams_per_connection, "1..200 (Binance limit)")
    _check(s.book_source in ("partial", "diff"), "BOOK_SOURCE", s.book_source, "partial|diff")
    _check(s.book_levels in (5, 10, 20), "book.levels", s.book_levels, "5, 10 or 20")
    _check(s.write_retries >= 0, "write_retries", s.write_retries, "must be >= 0")
    _check(s.rollover_sec > 0, "rollover_sec", s.rollover_sec, "must be > 0")
    _check(s.segment_flush_sec > 0, "segment_flush_sec", s.segment_flush_sec, "must be > 0")
    _check(s.precheck_minutes > 0, "precheck_minutes", s.precheck_minutes, "must be > 0")
    g = s.signals
    _check(g.z_mode in ("delta", "level"), "Z_MODE", g.z_mode, "delta|level")
    _check(g.scale_mode in ("ewma", "mad", "hybrid"), "SCALE_MODE", g.scale_mode, "ewma|mad|hybrid")
    _check(g.mad_multiplier > 0, "MAD_MULTIPLIER", g.mad_multiplier, "must be > 0")
    _check(0 <= g.scale_fast_weight <= 1, "SCALE_FAST_WEIGHT", g.scale_fast_weight, "0..1")
    _check(g.half_life_sec > 0, "HALF_LIFE_SEC", g.half_life_sec, "must be > 0")
    _check(g.fast_half_life_sec > 0, "fast_half_life_sec", g.fast_half_life_sec, "must be > 0")
    _check(g.winsor_limit > 0, "WINSOR_LIMIT", g.winsor_limit, "must be > 0")
    _check(g.floor_window >= 2, "floor_window", g.floor_window, "must be >= 2")
    _check(g.level_window >= 2, "level_window", g.level_window, "must be >= 2")
    _check(g.warmup_rows >= 0, "warmup_rows", g.warmup_rows, "must be >= 0")
    _check(1 <= g.ofi_levels <= s.book_levels, "ofi_levels", g.ofi_levels,
           f"1..book.levels ({s.book_levels})")
    _check(len(g.ofi_level_weights) == g.ofi_levels, "ofi_level_weights", g.ofi_level_weights,
           f"needs exactly ofi_levels ({g.ofi_levels}) weights")
    for name, thr, rearm in (("fusion_rearm", g.fusion_threshold, g.fusion_rearm),
                             ("extreme_rearm", g.extreme_threshold, g.extreme_rearm)):
        _check(0 < rearm < thr, name, rearm, f"0 < re-arm level < threshold ({thr})")
    _check(g.rearm_sec >= 0, "rearm_sec", g.rearm_sec, "must be >= 0")
    _check(g.cooldown_sec >= 0, "cooldown_sec", g.cooldown_sec, "must be >= 0")
    _check(g.divergence_window_sec > 0, "divergence_window_sec", g.divergence_window_sec, "must be > 0")
    _check(g.divergence_cooldown_sec >= 0, "divergence_cooldown_sec", g.divergence_cooldown_sec,
           "must be >= 0")
    _check(s.acceptance.max_events_per_hour > 0, "max_events_per_hour",
           s.acceptance.max_events_per_hour, "must be > 0")
    _check(g.warmup_half_lives >= 0, "warmup_half_lives", g.warmup_half_lives, "must be >= 0")


def _section_defaults(cls: type) -> dict[str, Any]:
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(cls)}


def load_settings(
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load ``config_path`` (default ``config/system.yaml`` or ``$OFI_CVD_CONFIG``), apply env
    overrides, then keyword ``overrides`` (already-typed values, e.g. from CLI flags)."""
    env = os.environ if env is None else env
    path = Path(config_path or env.get("OFI_CVD_CONFIG") or DEFAULT_CONFIG)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"config {path}: not valid YAML ({exc.__class__.__name__})") from None
        raw = doc.get("data_harvest") or {}
        if not isinstance(raw, dict):
            raise SettingsError(f"config {path}: data_harvest must be a mapping")
    elif config_path is not None:
        raise SettingsError(f"config {path}: file not found")

    top = _section_defaults(Settings)
    for keys, attr in _YAML_KEYS.items():
        node: Any = raw
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            top[attr] = _coerce(".".join(keys), node, top[attr])

    sig = _section_defaults(SignalSettings)
    for k, v in (raw.get("signals") or {}).items():
        if k not in sig:
            raise SettingsError(f"setting signals.{k}: unknown setting")
        sig[k] = _coerce(f"signals.{k}", v, sig[k])

    acc = _section_defaults(AcceptanceCriteria)
    for k, v in ((raw.get("data_quality") or {}).get("acceptance_criteria") or {}).items():
        if k not in acc:
            raise SettingsError(f"setting acceptance_criteria.{k}: unknown setting")
        acc[k] = _coerce(f"acceptance_criteria.{k}", v, acc[k])

    for var, (section, attr) in ENV_VARS.items():
        if var in env and env[var] != "":
            if section == "signals":
                sig[attr] = _coerce(var, env[var], sig[attr])
            else:
                top[attr] = _coerce(var, env[var], top[attr])

    top["signals"] = SignalSettings(**sig)
    top["acceptance"] = AcceptanceCriteria(**acc)
    top["log_level"] = str(top["log_level"]).upper()
    top.update(overrides)
    settings = Settings(**top)
    validate(settings)
    return settings
