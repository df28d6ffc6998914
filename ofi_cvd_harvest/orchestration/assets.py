"""The five derived tables as one date×symbol partitioned ``@multi_asset``, and ``derive_job``.

One step per partition runs the DQ gate (docs/dagster.md, "The publish rule"):
:func:`ofi_cvd_harvest.gate.run.gate_partition` computes the five tables once, stages them where
readers do not glob, evaluates every DoD check (the multi-asset's ``check_specs``, one registry:
``gate/checks.py``) on the staged tables and the raw partition, and publishes the selected
tables only if every blocking check passed; otherwise it quarantines them with a ``dq.json``
verdict, leaves ``data/ofi_cvd/`` untouched and fails the step. The check results are yielded
either way, so the UI shows which checks failed and why. Run config ``publish_on_fail: true``
accepts a failing partition explicitly (recorded in the materialisation metadata and dq.json).

The asset keys, partitions, group and lineage (``deps``: what each table is computed from,
docs/signals.md) are those of the former five ``@asset``s, so selections, backfills and the
sensor are unchanged.
``can_subset``: ``--select cvd`` computes and checks the whole partition (the tables share one
computation, the checks judge the partition) and publishes only ``cvd``. Selecting only checks
(re-running them from the UI) audits the *published* tables and publishes nothing.
Partitions are addressed by ``context.partition_key``, never by "the latest materialisation".
Parallelism comes from running several partitions at once (runs, backfills, the run queue's
limits in ``dagster.yaml``), each run one process.
"""

import contextlib
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from ..storage.fs import Storage
from .checks import check_result, check_specs
from .columns import column_schema
from .launcher import k8s_config_tags
from .partitions import date_symbol_partitions, split_key
from .plots import plot_metadata
from .raw_assets import RAW_ASSET_KEYS
from .resources import HarvestSettings
from .run_queue import DERIVE_POOL
from .tags import ROLE_TAG

DERIVED_GROUP = "derived"
MULTI_ASSET_NAME = "derived_tables"   # the op: run config goes under ops: derived_tables
DERIVED_ORDER = ("prices", "ofi", "cvd", "fusion", "events")  # a valid topological order
# Dagster lineage (docs/signals.md): what each table is computed from.
DEPS: dict[str, tuple[str, ...]] = {
    "prices": (RAW_ASSET_KEYS["agg_trade"],),
    "ofi": (RAW_ASSET_KEYS["book"],),
    "cvd": ("prices",),
    "fusion": ("ofi", "cvd"),
    "events": ("fusion", "cvd", "ofi", "prices", RAW_ASSET_KEYS["ops"]),
}
PREVIEW_ROWS = 10

_DESCRIPTIONS = {
    "prices": "One row per unique trade, agg_trade_id order, latency and trailing receive rate (docs/signals.md, prices).",
    "ofi": "Multi-level order-flow imbalance (Cont–Kukanov–Stoikov, every level) with robust z (docs/signals.md, OFI).",
    "cvd": "Session cumulative volume delta from 00:00 UTC with the robust z engine (docs/signals.md, CVD).",
    "fusion": "0.6·ofi_z + 0.4·z_cvd (as-of join, 5 s tolerance) and its robust z (docs/signals.md, Fusion).",
    "events": "Signal events (fusion, extremes, divergences; docs/signals.md, Events) plus the partition's ops events.",
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
def _logs_to(log):
    """Forward the derivation's and the gate's own log lines (timings, crash recovery) to the
    Dagster run log."""
    loggers = [logging.getLogger("ofi_cvd_harvest.signals"), logging.getLogger("ofi_cvd_harvest.gate")]
    handler = _ToDagsterLog(log)
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)


def describe_table(kind: str, df: pl.DataFrame) -> tuple[dict[str, Any], str]:
    """What the materialisation metadata needs from a table (taken while it is in memory)."""
    return summarize(df), markdown_preview(df)


def table_metadata(described: tuple[dict[str, Any], str], path: str) -> dict[str, Any]:
    """Materialisation metadata of one published table: rows, time range, path, a preview,
    null and flag counts."""
    info, preview = described
    metadata: dict[str, Any] = {
        "dagster/row_count": info["rows"],
        "path": dg.MetadataValue.path(path),
        "preview": dg.MetadataValue.md(preview),
        "null_counts": dg.MetadataValue.json(info["null_counts"]),
        "flag_counts": dg.MetadataValue.json(info["flag_counts"]),
    }
    for key in ("first_ts", "last_ts", "covered_hours"):
        if key in info:
            metadata[key] = info[key]
    for key in ("regime_counts", "event_type_counts", "source_counts"):
        if key in info:
            metadata[key] = dg.MetadataValue.json(info[key])
    return metadata


def gate_metadata(status: str, failed: list[str], warnings: list[str],
                  record: dict | None = None, verdict_path: str | None = None) -> dict[str, Any]:
    """The gate's decision as metadata: ``dq/verdict`` pass or accepted, and for an accepted
    partition who accepted it, when, how, and which blocking checks had failed."""
    md: dict[str, Any] = {"dq/verdict": "pass" if status == "published" else status,
                          "dq/failed_checks": dg.MetadataValue.json(failed),
                          "dq/warnings": dg.MetadataValue.json(warnings)}
    accepted = (record or {}).get("accepted")
    if accepted:
        md["dq/accepted_by"] = accepted["by"]
        md["dq/accepted_at"] = accepted["at"]
        md["dq/accepted_via"] = accepted["via"]
    if verdict_path:
        md["dq/verdict_path"] = dg.MetadataValue.path(verdict_path)
    return md


class DeriveConfig(dg.Config):
    """Run config of the derived multi-asset (``ops: {derived_tables: {config: …}}``)."""

    publish_on_fail: bool = Field(
        default=False,
        description="Publish the partition even if blocking DQ checks fail (an explicit "
                    "acceptance, recorded in the materialisation metadata and in "
                    "quarantine/date=…/symbol=…/dq.json). Default: failing partitions are "
                    "quarantined and the step fails.")


def _who(context: dg.AssetExecutionContext) -> str:
    from ..gate.verdict import who
    return context.run.tags.get("dagster/user") or who()


def _spec(kind: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        kind, deps=list(DEPS[kind]), group_name=DERIVED_GROUP, kinds={"polars", "parquet"},
        description=_DESCRIPTIONS[kind],
        metadata={"dagster/column_schema": column_schema(kind),
                  "layout": f"data/ofi_cvd/date=YYYY-MM-DD/symbol=SYM/kind={kind}/part-00000.parquet"})


@dg.multi_asset(
    name=MULTI_ASSET_NAME,
    specs=[_spec(k) for k in DERIVED_ORDER],
    check_specs=check_specs(),
    partitions_def=date_symbol_partitions,
    can_subset=True,
    pool=DERIVE_POOL,   # the run queue's derive limit (dagster.yaml concurrency: pools)
    description="Derive one date|SYMBOL partition through the DQ gate: compute the five tables "
                "once, stage them, run the DoD checks on the staged tables, publish only if "
                "every blocking check passed (else quarantine + dq.json, step fails).",
)
def derived_tables(context: dg.AssetExecutionContext, config: DeriveConfig,
                   harvest: HarvestSettings):
    from ..gate import checks as registry
    from ..gate.run import gate_partition
    from ..gate.verdict import Acceptance

    date, symbol = split_key(context.partition_key)
    settings = harvest.settings()
    selected = [k for k in DERIVED_ORDER if dg.AssetKey(k) in context.selected_asset_keys]
    wanted_checks = {k.name for k in context.selected_asset_check_keys}
    if not selected:   # only checks selected (re-run from the UI): audit what is published
        results = registry.evaluate(settings.data_dir, settings, date, symbol,
                                    [c.name for c in registry.DOD_CHECKS if c.name in wanted_checks])
        for c, r in results:
            yield check_result(c, r, staged=False)
        return
    accept = None
    if config.publish_on_fail:
        accept = Acceptance(by=_who(context), via=f"run config publish_on_fail (run {context.run.run_id})")
    with _logs_to(context.log):
        out = gate_partition(Storage(settings.data_dir), settings, date, symbol, selected,
                             accept=accept, run=f"dagster run {context.run.run_id}",
                             describe=describe_table)
    accepted_by = accept.by if accept is not None else None
    checks = [check_result(c, r, accepted_by=accepted_by) for c, r in out.results
              if c.name in wanted_checks]
    for c, r in out.results:
        context.log.info(f"{date}|{symbol} {r.name}: value={r.value} threshold={r.threshold} "
                         f"passed={r.passed}{'' if c.blocking else ' (not blocking)'}")
    gate_md = gate_metadata(out.status, out.failed, out.warnings, out.verdict, out.verdict_path)
    if not out.published:
        yield from checks
        raise dg.Failure(
            description=f"{date}|{symbol}: blocking DQ checks failed: {', '.join(out.failed)}; "
                        f"quarantined {', '.join(out.kinds)} under {Path(out.verdict_path).parent}; "
                        "data/ofi_cvd is unchanged. Accept with run config publish_on_fail: true "
                        f"or `ofi-cvd-harvest publish --date {date} --symbol {symbol}`.",
            metadata={**gate_md, "quarantine": dg.MetadataValue.path(str(Path(out.verdict_path).parent))})
    picture = plot_metadata(settings, date, symbol, context.log)   # orchestration/plots.py
    for kind in selected:
        md = {**table_metadata(out.described[kind], out.paths[kind]), **gate_md, **picture}
        context.log.info(f"{kind} {date}|{symbol}: {md['dagster/row_count']:,} rows -> {out.paths[kind]}")
        yield dg.MaterializeResult(asset_key=kind, metadata=md)
    yield from checks   # after the materialisations: the checks judge the new version


derived_assets = [derived_tables]

derive_job = dg.define_asset_job(
    "derive_job",
    selection=dg.AssetSelection.assets(*DERIVED_ORDER),  # partitions inferred from the assets
    description="Derive prices, ofi, cvd, fusion and events for one date|SYMBOL partition through "
                "the DQ gate (publish only if every blocking check passes; else quarantine). "
                "Backfill a range from the UI or run with "
                "--tags '{\"dagster/partition\": \"2024-07-19|BTCUSDT\"}'. Accept a failing "
                "partition with run config ops: derived_tables: config: publish_on_fail: true.",
    tags={ROLE_TAG: "derive", **k8s_config_tags("derive")},
    executor_def=dg.in_process_executor,
)
