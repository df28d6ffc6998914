"""The five derived tables as date×symbol partitioned Dagster assets, and ``derive_job``.

The math lives in :mod:`ofi_cvd_harvest.signals.derive`; an asset here only (1) calls
``derive_kind`` for its partition (recomputed from raw with the previous day's warm-up;
memoised in the process and, when the run's steps are separate processes, shared through the
disk, so the five assets of one run cost about one computation under either executor),
(2) ``write_kind`` (atomic replacement of the partition's file) and (3) describes the result as
materialisation metadata (row count, time range, path, a preview, null and flag counts). The
Dagster ``deps`` are the lineage of SPEC §3.2, so the UI shows what is stale after new raw
data. Partitions are addressed by ``context.partition_key``, never by "the latest
materialisation" (which races in concurrent backfills).

``derive_job`` runs in process by default; run config selects Dagster's multiprocess executor
(``execution: config: multiprocess: max_concurrent: 2``), see :data:`derive_executor`.
"""

import contextlib
import datetime as dt
import logging
from typing import Any

import dagster as dg
import polars as pl

from ..schemas import DERIVED_SCHEMAS
from ..storage.fs import Storage
from .partitions import date_symbol_partitions, split_key
from .raw_assets import RAW_ASSET_KEYS
from .resources import HarvestSettings

DERIVED_GROUP = "derived"
DERIVED_ORDER = ("prices", "ofi", "cvd", "fusion", "events")  # a valid topological order
# Dagster lineage (SPEC §3.2 / §5): what each table is computed from.
DEPS: dict[str, tuple[str, ...]] = {
    "prices": (RAW_ASSET_KEYS["agg_trade"],),
    "ofi": (RAW_ASSET_KEYS["book"],),
    "cvd": ("prices",),
    "fusion": ("ofi", "cvd"),
    "events": ("fusion", "cvd", "ofi", "prices", RAW_ASSET_KEYS["ops"]),
}
PREVIEW_ROWS = 10

_DESCRIPTIONS = {
    "prices": "One row per unique trade, agg_trade_id order, latency and trailing receive rate (SPEC §3.2).",
    "ofi": "Multi-level order-flow imbalance (Cont–Kukanov–Stoikov, every level) with robust z (SPEC §5.3).",
    "cvd": "Session cumulative volume delta from 00:00 UTC with the robust z engine (SPEC §5.2).",
    "fusion": "0.6·ofi_z + 0.4·z_cvd (as-of join, 5 s tolerance) and its robust z (SPEC §5.4).",
    "events": "Signal events (fusion, extremes, divergences; SPEC §5.6) plus the partition's ops events.",
}


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    s = "" if v is None else str(v)
    return s if len(s) <= 60 else s[:57] + "..."


def markdown_preview(df: pl.DataFrame, n: int = PREVIEW_ROWS) -> str:
    """The first ``n`` rows as a Markdown table (no pandas/tabulate needed)."""
    head = df.head(n)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    if df.height > n:
        lines.append(f"\n… {df.height - n:,} more rows")
    return "\n".join(lines)


def summarize(df: pl.DataFrame) -> dict[str, Any]:
    """Plain-value description of a derived table: the materialisation metadata's content."""
    out: dict[str, Any] = {"rows": df.height}
    if df.height and "ts_ms" in df.columns:
        lo, hi = df["ts_ms"].min(), df["ts_ms"].max()
        out["first_ts"], out["last_ts"] = _iso(lo), _iso(hi)
        out["covered_hours"] = round((hi - lo) / 3_600_000, 3)
    nulls = {c: int(v) for c, v in zip(df.columns, df.null_count().row(0)) if v} if df.height else {}
    out["null_counts"] = nulls
    out["flag_counts"] = {c: int(df[c].sum() or 0) for c, t in df.schema.items() if t == pl.Boolean}
    for col in ("regime", "event_type", "source"):
        if col in df.columns and df.height:
            vc = df[col].value_counts().sort(col)
            out[f"{col}_counts"] = {str(k): int(v) for k, v in vc.iter_rows()}
    return out


# derive_job's executor: Dagster's multi_or_in_process_executor (same config: `in_process`, or
# `multiprocess` with max_concurrent, retries, start_method, tag_concurrency_limits), but with
# in-process as the default, which a partitioned job's static run config cannot set.
derive_executor = dg.multi_or_in_process_executor.configured(
    lambda config: config, name="in_process_or_multiprocess",
    config_schema=dg.Field(dg.multi_or_in_process_executor.config_schema.config_type,
                           default_value={"in_process": {}},
                           description="in_process (default): one process computes the "
                                       "partition once; multiprocess: a process per step, "
                                       "sharing one computation through the disk"),
    description="In process by default; `execution: config: multiprocess: max_concurrent: N` "
                "runs each asset step in its own process.")


def steps_share_process(context: dg.AssetExecutionContext) -> bool:
    """Whether every step of this run executes in this process (in-process executor), so the
    in-process memo alone serves the five kinds and nothing needs staging on disk. Unknown
    executors count as multi-process (staging is then merely redundant)."""
    name = context.job_def.executor_def.name
    execution = (context.run.run_config or {}).get("execution") or {}
    chosen = (execution.get("config") or {}) if isinstance(execution, dict) else {}
    if name == dg.in_process_executor.name:
        return True
    if name == derive_executor.name:
        return "multiprocess" not in chosen
    if name == dg.multi_or_in_process_executor.name:
        return "in_process" in chosen
    return False


class _ToDagsterLog(logging.Handler):
    def __init__(self, log):
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log.log(record.levelno, record.getMessage())
        except Exception:  # logging must never fail the step
            pass


@contextlib.contextmanager
def _signals_log_to(log):
    """Forward the derivation's own log lines (computed / read from staging, and how long the
    step waited for the partition's lock) to the Dagster run log."""
    if log is None:
        yield
        return
    logger = logging.getLogger("ofi_cvd_harvest.signals")
    handler, level = _ToDagsterLog(log), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def materialize_kind(kind: str, harvest: HarvestSettings, date: str, symbol: str,
                     log=None, share: bool = False) -> dg.MaterializeResult:
    """Derive one table for one partition, write it atomically, describe it.

    Upstream tables are not read back from their files: ``derive_kind`` recomputes from the raw
    partition plus the previous day's warm-up tail (which the day tables lack) and memoises
    the partition, so the five assets of one run cost about one computation. ``share``: the
    run's steps are separate processes; the first computes the partition and stages it on disk
    for the others (``signals.staging``)."""
    from ..signals.derive import derive_kind, write_kind  # lazy: keeps definitions importable

    settings = harvest.settings()
    storage = Storage(settings.data_dir)
    with _signals_log_to(log):
        df = derive_kind(kind, storage, settings, date, symbol, share=share)
        path = write_kind(storage, date, symbol, kind, df)
    info = summarize(df)
    metadata: dict[str, Any] = {
        "dagster/row_count": info["rows"],
        "path": dg.MetadataValue.path(path),
        "preview": dg.MetadataValue.md(markdown_preview(df)),
        "null_counts": dg.MetadataValue.json(info["null_counts"]),
        "flag_counts": dg.MetadataValue.json(info["flag_counts"]),
    }
    for key in ("first_ts", "last_ts", "covered_hours"):
        if key in info:
            metadata[key] = info[key]
    for key in ("regime_counts", "event_type_counts", "source_counts"):
        if key in info:
            metadata[key] = dg.MetadataValue.json(info[key])
    if log is not None:
        log.info(f"{kind} {date}|{symbol}: {info['rows']:,} rows -> {path}")
    return dg.MaterializeResult(metadata=metadata)


def _column_schema(kind: str) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type))
                                   for f in DERIVED_SCHEMAS[kind]])


def _build(kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=kind,
        partitions_def=date_symbol_partitions,
        deps=list(DEPS[kind]),
        group_name=DERIVED_GROUP,
        kinds={"polars", "parquet"},
        description=_DESCRIPTIONS[kind],
        metadata={
            "dagster/column_schema": _column_schema(kind),
            "layout": f"data/ofi_cvd/date=YYYY-MM-DD/symbol=SYM/kind={kind}/part-00000.parquet",
        },
    )
    def _asset(context: dg.AssetExecutionContext, harvest: HarvestSettings) -> dg.MaterializeResult:
        date, symbol = split_key(context.partition_key)
        return materialize_kind(kind, harvest, date, symbol, log=context.log,
                                share=not steps_share_process(context))

    return _asset


derived_assets = [_build(kind) for kind in DERIVED_ORDER]

derive_job = dg.define_asset_job(
    "derive_job",
    selection=dg.AssetSelection.assets(*DERIVED_ORDER),  # partitions inferred from the assets
    description="Derive prices, ofi, cvd, fusion and events (and run their DQ checks) for one "
                "date|SYMBOL partition. Backfill a range from the UI or run with "
                "--tags '{\"dagster/partition\": \"2024-07-19|BTCUSDT\"}'. In process by "
                "default; run config `execution: config: multiprocess: max_concurrent: 2` runs "
                "each step in its own process (one computation shared through the disk).",
    tags={"ofi_cvd/role": "derive"},
    executor_def=derive_executor,
)
