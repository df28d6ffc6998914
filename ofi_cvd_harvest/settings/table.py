"""The settings table: every setting once — key, environment name, kind (type and range),
default and meaning. Loading, validation, error messages, the ``Settings`` dataclasses and the
README's settings table are all derived from it (README.md "Settings"; docs/capture.md).

Adding a setting is one line here. Keys are dotted paths under ``data_harvest`` in
``config/system.yaml``; a key under ``signals.`` becomes an attribute of ``SignalSettings``, under
``data_quality.acceptance_criteria.`` of ``AcceptanceCriteria``, anything else of ``Settings``
(named by its last part unless ``attr`` says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..protocol.vocabulary import PARTIAL_LEVELS
from .kinds import (Choice, DataRootKind, Day, Flag, Float, Groups, Int, Kind, LeaseUrl, Name,
                    Names, Numbers, PathKind, Symbols, Text)

# key prefix -> (attribute of Settings, dataclass name); the rest are attributes of Settings
GROUPS: dict[str, tuple[str, str]] = {
    "data_quality.acceptance_criteria": ("acceptance", "AcceptanceCriteria"),
    "signals": ("signals", "SignalSettings"),
}

SECONDS = Float(gt=0)          # an interval, back-off or time-out: zero or negative is a typo
LOOPS = ("asyncio", "uvloop")   # capture.event_loop (capture/eventloop.py)
DEDUP_MAX = 1 << 20            # 8 B per remembered id per symbol: 8 MiB each (capture/dedup.py)


@dataclass(frozen=True)
class Setting:
    key: str                    # dotted path under data_harvest
    kind: Kind
    default: Any
    doc: str                    # one line, for the README table
    env: str | None = None      # environment variable overriding the file
    attr: str | None = None     # dataclass attribute, when not the key's last part

    @property
    def group(self) -> str:
        """Attribute of ``Settings`` holding this setting's dataclass ('' = Settings itself)."""
        for prefix, (attr, _) in GROUPS.items():
            if self.key.startswith(prefix + "."):
                return attr
        return ""

    @property
    def name(self) -> str:
        return self.attr or self.key.rsplit(".", 1)[-1]


S = Setting
TABLE: tuple[Setting, ...] = (
    S("symbols", Symbols(), ("BTCUSDT", "ETHUSDT"), "symbols to capture and derive (comma-separated in the environment)", "SYMBOLS"),
    S("run_hours", Float(gt=0), 72.0, "capture duration in hours", "RUN_HOURS"),
    S("parquet_rotate_sec", Float(gt=0, le=86400), 60.0, "seconds between raw Parquet files (and at each UTC midnight)", "PARQUET_ROTATE_SEC"),
    S("dedup_lru", Int(ge=16, le=DEDUP_MAX), 8192, "recent trade ids remembered per symbol for dedup (8 bytes each, allocated at start)", "DEDUP_LRU"),
    S("data_dir", DataRootKind(), Path("data"), "data root holding raw/ and ofi_cvd/ (a directory, or s3://bucket/prefix with AWS_ENDPOINT_URL)", "DATA_DIR"),
    S("artifacts_dir", PathKind(), Path("artifacts"), "checkpoint, run logs and reports", "ARTIFACTS_DIR"),
    S("log_level", Choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True), "INFO", "log level of the capture", "LOG_LEVEL"),
    S("exchange.ws_base_url", Text(("ws://", "wss://")), "wss://fstream.binance.com", "WebSocket base URL (default: the real Binance USDT-M host)", "WS_BASE_URL"),
    S("exchange.rest_base_url", Text(("http://", "https://")), "https://fapi.binance.com", "REST base URL (default: the real Binance USDT-M host)", "REST_BASE_URL"),
    S("exchange.max_streams_per_connection", Int(ge=1, le=200), 200, "streams per WebSocket connection (Binance allows 200)"),
    S("exchange.rest_weight_limit_per_min", Int(ge=1, le=2400), 2400, "REST request weight per minute the client stays under (Binance: 2400 per IP)"),
    S("websocket.ping_interval", Float(gt=0, le=3600), 20.0, "client keep-alive ping every N s (the server pings every 180 s)", "WSS_PING_INTERVAL"),
    S("websocket.heartbeat_timeout", Float(gt=0, le=3600), 30.0, "no pong or no data for N s: reconnect"),
    S("websocket.reconnect_base_sec", Float(ge=0.01, le=60), 0.5, "first reconnect back-off (s), doubled per failure with jitter"),
    S("websocket.reconnect_max_sec", Float(ge=0.01, le=3600), 30.0, "longest reconnect back-off (s); at least reconnect_base_sec"),
    S("websocket.rollover_sec", Float(gt=0, lt=86400), 82800.0, "open a replacement connection after N s, before the exchange's 24 h cut"),
    S("websocket.redundancy", Int(ge=1, le=3), 1, "connections per stream, opened at staggered times; frames merged by id, a gap only when none delivered (2 for the universe)", "WS_REDUNDANCY"),
    S("book.source", Choice(("partial", "diff")), "partial", "partial: `<sym>@depth10@100ms`; diff: `<sym>@depth@100ms` + REST snapshot", "BOOK_SOURCE", attr="book_source"),
    S("book.levels", Choice(PARTIAL_LEVELS), 10, "book levels per side captured", attr="book_levels"),
    S("reliability.write_retries", Int(ge=0, le=100), 3, "immediate retries of a failed Parquet write"),
    S("reliability.max_errors_per_hour", Int(ge=0), 100, "more write errors than this in an hour stop the capture"),
    S("reliability.error_cooldown_sec", SECONDS, 300.0, "the sensor relaunches a failed capture after N s"),
    S("reliability.clock_check_interval_sec", Float(gt=0, le=86400), 600.0, "compare the local clock with /fapi/v1/time every N s"),
    S("reliability.max_clock_drift_ms", Float(gt=0), 200.0, "clock drift above N ms is logged and recorded"),
    S("reliability.final_heal_sec", Float(ge=0, le=600), 5.0, "at a stop, heal owed trades for at most N s (the rest stays owed in the checkpoint); a stop takes at most N + ~10 s", "FINAL_HEAL_SEC"),
    S("reliability.segment_flush_sec", Float(gt=0, le=60), 1.0, "crash-safe on-disk segment flush interval (s)"),
    S("reliability.spool_max_mb", Int(ge=1, le=1 << 24), 4096, "lake on s3://: raw files waiting on local disk for the store (MB); beyond this new files are refused like on a full disk", "SPOOL_MAX_MB"),
    S("capture.universe", Choice(("symbols", "shards")), "symbols", "what capture_sensor keeps captured: `symbols` (SYMBOLS, or capture.symbol_groups) or `shards` (every TRADING perpetual, cut into capture.shards; docs/deploy.md)", "CAPTURE_UNIVERSE", attr="capture_universe"),
    S("capture.event_loop", Choice(LOOPS), "asyncio", "the capture's event loop: `asyncio` (the standard library's) or `uvloop` (libuv; the `uvloop` extra; measured ~2 % less capture CPU at 300 symbols, docs/performance.md §12)", "CAPTURE_EVENT_LOOP", attr="event_loop"),
    S("capture.symbol_groups", Groups(), (), "symbols mode: one capture run per group, e.g. `BTCUSDT,ETHUSDT;SOLUSDT` (empty: one group of every symbol)", "CAPTURE_SYMBOL_GROUPS", attr="symbol_groups"),
    S("capture.shards", Int(ge=1, le=1000), 1, "shards mode: shards balanced by 24 h quote volume (more when the universe needs them to stay within max_streams_per_connection)", "CAPTURE_SHARDS", attr="capture_shards"),
    S("capture.host_queues", Names(), (), "shards mode: Celery queues (`dagster-celery/queue` tag) the shards go to, round-robin (empty: no queue tag)", "CAPTURE_HOST_QUEUES", attr="host_queues"),
    S("capture.shard", Name(), "", "the shard this capture serves (`--shard`; set by capture_sensor in shards mode): names its artifacts and, with a lease URL, the lease it holds", "CAPTURE_SHARD", attr="shard"),
    S("capture.autostart", Flag(), False, "capture_sensor starts RUNNING when Dagster loads the code (else STOPPED until switched on)", "OFI_CVD_CAPTURE_AUTOSTART", attr="capture_autostart"),
    S("partitions.start_date", Day(), "2024-07-01", "first day of the Dagster date partitions", "PARTITIONS_START_DATE", attr="partitions_start_date"),
    S("partitions.extra_symbols", Symbols(optional=True, allowed="symbols, each ^[A-Z0-9]{2,20}$, no duplicates; empty = none"), (), "symbols registered as Dagster partitions at code load beside SYMBOLS (captured symbols join on their own; docs/dagster.md \"Partitions\")", "EXTRA_PARTITION_SYMBOLS", attr="extra_partition_symbols"),
    S("capture.lease_url", LeaseUrl(), "", "where shard leases live: postgresql+psycopg2://… (advisory lock) or s3://bucket/prefix (lease object); empty = no lease", "CAPTURE_LEASE_URL"),
    S("capture.lease_ttl_sec", Float(ge=3, le=3600), 30.0, "s3:// lease: a lease not renewed for N s may be taken over", "CAPTURE_LEASE_TTL_SEC"),
    S("capture.lease_renew_sec", Float(ge=0.5, le=1200), 10.0, "renew (s3://) or check (PostgreSQL) the lease every N s; at most a third of lease_ttl_sec", "CAPTURE_LEASE_RENEW_SEC"),
    S("monitoring.prometheus_port", Int(ge=0, le=65535, note="0 = off"), 8009, "Prometheus metrics port", "PROMETHEUS_PORT"),
    S("monitoring.prometheus_host", Text(), "127.0.0.1", "address the metrics endpoint binds"),
    S("monitoring.status_interval_sec", Float(gt=0, le=86400), 60.0, "a status line per symbol in the capture's run log every N s (and a summary every hour)", "STATUS_INTERVAL_SEC"),
    S("monitoring.live_z_symbols", Symbols(), ("BTCUSDT", "ETHUSDT"), "symbols whose last live z values are exported as gauges (signal_z: a series each, keep it short)"),
    S("monitoring.live_quiet_rows", Int(ge=1, le=4096, note="1 = off"), 16, "the live monitor stages a quiet symbol's trades and runs them N at a time, one symbol at a time (its state stays in the caches: ~⅓ less monitor CPU at 300 symbols); the gauge tick runs the rest in slices between frames (docs/performance.md §13)"),
    S("data_quality.precheck_minutes", Float(gt=0), 10.0, "capture length of --precheck-only"),
    S("data_quality.acceptance_criteria.max_empty_bucket_rate", Float(ge=0, le=1), 0.001, "DoD: largest share of empty 1 s buckets"),
    S("data_quality.acceptance_criteria.max_duplicate_rate", Float(ge=0, le=1), 0.005, "DoD: largest share of duplicate trades"),
    S("data_quality.acceptance_criteria.max_latency_p99_ms", Float(gt=0), 120.0, "DoD: largest p99 latency (ms)"),
    S("data_quality.acceptance_criteria.max_latency_p50_ms", Float(gt=0), 60.0, "DoD: largest p50 latency (ms)"),
    S("data_quality.acceptance_criteria.min_events_per_72h", Float(ge=0), 1000.0, "DoD: fewest signal events per 72 h"),
    S("data_quality.acceptance_criteria.min_winsor_effect", Float(ge=0), 0.1, "DoD: smallest winsorisation effect"),
    S("data_quality.acceptance_criteria.max_events_per_hour", Float(gt=0), 300.0, "signal events per symbol-hour above this: a warning (not blocking)"),
    S("signals.z_mode", Choice(("delta", "level")), "delta", "z of the CVD delta or of the CVD level", "Z_MODE"),
    S("signals.scale_mode", Choice(("ewma", "mad", "hybrid")), "hybrid", "scale of the z engine", "SCALE_MODE"),
    S("signals.mad_multiplier", Float(gt=0), 1.8, "k of the MAD floor k·1.4826·MAD", "MAD_MULTIPLIER"),
    S("signals.scale_fast_weight", Float(ge=0, le=1), 0.2, "weight of the fast EWMA in the hybrid scale", "SCALE_FAST_WEIGHT"),
    S("signals.half_life_sec", SECONDS, 600.0, "slow EWMA half-life (s)", "HALF_LIFE_SEC"),
    S("signals.fast_half_life_sec", SECONDS, 60.0, "fast EWMA half-life (s)"),
    S("signals.winsor_limit", Float(gt=0), 8.0, "|z| is clipped at this value", "WINSOR_LIMIT"),
    S("signals.floor_window", Int(ge=2), 200, "rows in the MAD floor window"),
    S("signals.level_window", Int(ge=2), 150, "rows of CVD history for Z_MODE=level"),
    S("signals.warmup_rows", Int(ge=0), 20, "z is null for the first N rows"),
    S("signals.silence_sec", SECONDS, 5.0, "a silence longer than N s restarts the warm-up"),
    S("signals.silence_warmup_rows", Int(ge=0), 2, "rows of null z after a silence"),
    S("signals.ofi_levels", Int(ge=1, le=20), 5, "book levels in the multi-level OFI; at most book.levels"),
    S("signals.ofi_level_weights", Numbers(Float(ge=0)), (0.4, 0.25, 0.2, 0.1, 0.05), "OFI weight per level; exactly ofi_levels of them"),
    S("signals.w_ofi", Float(ge=0), 0.6, "fusion weight of the OFI z"),
    S("signals.w_cvd", Float(ge=0), 0.4, "fusion weight of the CVD z"),
    S("signals.fusion_tolerance_ms", Int(ge=1), 5000, "as-of join tolerance between OFI and CVD rows (ms)"),
    S("signals.regime_window_sec", SECONDS, 300.0, "regime activity/volatility window (s)"),
    S("signals.regime_half_life_sec", SECONDS, 3600.0, "regime EW mean half-life (s)"),
    S("signals.fusion_threshold", Float(gt=0), 2.0, "fusion event fires at |score z| above this"),
    S("signals.fusion_rearm", Float(ge=0), 1.0, "fusion event re-arms below this |score z|"),
    S("signals.extreme_threshold", Float(gt=0), 3.0, "OFI/CVD extreme event fires at |z| above this"),
    S("signals.extreme_rearm", Float(ge=0), 1.0, "extreme event re-arms below this |z|"),
    S("signals.divergence_window_sec", SECONDS, 900.0, "price/CVD divergence look-back (s)"),
    S("signals.rearm_sec", Float(ge=0), 5.0, "an event type re-arms after |z| stays below its re-arm level for N s"),
    S("signals.cooldown_sec", Float(ge=0), 120.0, "an event type and direction fires again only N s after it last fired"),
    S("signals.divergence_cooldown_sec", Float(ge=0), 900.0, "a new divergence episode of the same direction needs this gap (s)"),
    S("signals.warmup_half_lives", Float(ge=0), 6.0, "derivation warm-up before 00:00 UTC, in half-lives"),
)


@dataclass(frozen=True)
class Relation:
    """A rule between settings, reported against ``key`` (the setting to change)."""

    key: str
    holds: Callable[[Any], bool]   # Settings -> bool
    allowed: Callable[[Any], str]  # Settings -> the allowed range, with the other value


RELATIONS: tuple[Relation, ...] = (
    Relation("capture.lease_renew_sec", lambda s: s.lease_renew_sec * 3 <= s.lease_ttl_sec,
             lambda s: f"<= capture.lease_ttl_sec / 3 ({s.lease_ttl_sec / 3:g})"),
    Relation("websocket.reconnect_max_sec", lambda s: s.reconnect_max_sec >= s.reconnect_base_sec,
             lambda s: f">= websocket.reconnect_base_sec ({s.reconnect_base_sec})"),
    Relation("signals.ofi_levels", lambda s: s.signals.ofi_levels <= s.book_levels,
             lambda s: f"1..book.levels ({s.book_levels})"),
    Relation("signals.ofi_level_weights",
             lambda s: len(s.signals.ofi_level_weights) == s.signals.ofi_levels,
             lambda s: f"exactly signals.ofi_levels ({s.signals.ofi_levels}) weights"),
    Relation("signals.fusion_rearm", lambda s: 0 < s.signals.fusion_rearm < s.signals.fusion_threshold,
             lambda s: f"> 0 and < signals.fusion_threshold ({s.signals.fusion_threshold})"),
    Relation("signals.extreme_rearm", lambda s: 0 < s.signals.extreme_rearm < s.signals.extreme_threshold,
             lambda s: f"> 0 and < signals.extreme_threshold ({s.signals.extreme_threshold})"),
)

BY_KEY: dict[str, Setting] = {s.key: s for s in TABLE}
ENV_VARS: dict[str, str] = {s.env: s.key for s in TABLE if s.env}
