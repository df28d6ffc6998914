"""Signal study assets (docs/research.md): thin Dagster wiring over :mod:`ofi_cvd_harvest.research`.

* ``signal_study`` — one study per date × symbol partition, downstream of the five derived
  tables (by asset key, so it follows whatever asset produces them), group ``research``;
  writes ``ofi_cvd/date=…/symbol=…/kind=study/part-00000.parquet`` and the chart, and shows
  the Markdown summary as metadata.
* ``signal_study_multiday`` — unpartitioned: the daily studies of each configured symbol
  combined (all stored days and the last ``RECENT_DAYS``), so the UI answers "over the last
  N days" without a backfill of anything.
"""

from typing import Any

import dagster as dg

from ..schemas import DERIVED_KINDS
from .columns import column_schema
from .partitions import date_symbol_partitions, split_key
from .resources import HarvestSettings

RESEARCH_GROUP = "research"
RECENT_DAYS = 7
STUDY_DEPS = [dg.AssetKey(k) for k in DERIVED_KINDS]

@dg.asset(
    name="signal_study",
    partitions_def=date_symbol_partitions,
    deps=STUDY_DEPS,
    group_name=RESEARCH_GROUP,
    kinds={"polars", "parquet"},
    description="Forward returns after signal events and the Spearman IC of ofi_z, z_cvd and "
                "score_z at 1/10/60/300 s, with Newey–West intervals (docs/research.md).",
    metadata={"dagster/column_schema": column_schema("study"),
              "layout": "data/ofi_cvd/date=YYYY-MM-DD/symbol=SYM/kind=study/part-00000.parquet"},
)
def signal_study(context: dg.AssetExecutionContext, harvest: HarvestSettings) -> dg.MaterializeResult:
    from ..research.io import read_derived
    from ..research.run import run_study   # lazy: keeps definitions light

    date, symbol = split_key(context.partition_key)
    storage = harvest.storage()
    if read_derived(storage, date, symbol, "prices", ["price"]) is None:
        raise dg.Failure(f"no derived prices for {date}|{symbol}: materialize the derived assets "
                         "(prices, ofi, cvd, fusion, events) of this partition first")
    res = run_study(storage, date, symbol)
    context.log.info(f"signal_study {date}|{symbol}: {len(res.table)} rows in {res.seconds:.2f} s"
                     f" -> {res.path}")
    metadata: dict[str, Any] = {
        "dagster/row_count": len(res.table),
        "path": dg.MetadataValue.path(res.path),
        "chart": dg.MetadataValue.path(res.chart_path),
        "summary": dg.MetadataValue.md(res.markdown),
        "next_day_prices": res.has_next_day,
    }
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    name="signal_study_multiday",
    deps=[signal_study],
    group_name=RESEARCH_GROUP,
    kinds={"polars", "parquet"},
    description=f"The stored daily signal studies of each symbol combined (counts-weighted): all "
                f"days and the last {RECENT_DAYS} (docs/research.md).",
)
def signal_study_multiday(context: dg.AssetExecutionContext,
                          harvest: HarvestSettings) -> dg.MaterializeResult:
    from ..research.aggregate import multiday
    from ..research.io import write_aggregate
    from ..research.summary import markdown

    storage = harvest.storage()
    metadata: dict[str, Any] = {}
    rows = 0
    for symbol in harvest.settings().symbols:
        for label, days in ((f"last_{RECENT_DAYS}_days", RECENT_DAYS), ("all_days", None)):
            df = multiday(storage, symbol, days)
            if len(df) == 0:
                continue
            path = write_aggregate(storage, symbol, label, df)
            rows += len(df)
            metadata[f"{symbol}_{label}"] = dg.MetadataValue.md(
                markdown(df, f"Signal study {symbol} {df['date'][0]} ({label.replace('_', ' ')})"))
            metadata[f"{symbol}_{label}_path"] = dg.MetadataValue.path(path)
    context.log.info(f"signal_study_multiday: {rows} rows")
    metadata["dagster/row_count"] = rows
    return dg.MaterializeResult(metadata=metadata)


research_assets = [signal_study, signal_study_multiday]
