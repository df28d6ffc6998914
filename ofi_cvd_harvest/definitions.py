"""The Dagster code location (``dagster dev -m ofi_cvd_harvest.definitions``).

Composes the orchestration modules into one ``Definitions``: raw tables as external assets,
the five derived tables as one multi-asset whose check specs are the DQ gate (docs/dagster.md),
``capture_job`` and ``derive_job``, and the sensors that keep the capture alive, report raw
partitions and refresh derivations. Runs execute in process: a derive run is one process
computing, checking and publishing one partition; several partitions run side by side as
separate runs (backfills, the run queue's limits in dagster.yaml).
The signal study assets live in ``orchestration/research_assets.py`` (docs/research.md).
"""

from __future__ import annotations

import dagster as dg

from .deploy.instance import check_instance
from .orchestration.assets import derive_job, derived_assets
from .orchestration.jobs import capture_job
from .orchestration.partitions import register_configured_symbols
from .orchestration.raw_assets import raw_specs
from .orchestration.research_assets import research_assets
from .orchestration.resources import RESOURCE_KEY, HarvestSettings
from .orchestration.sensors import all_sensors

check_instance()   # a shared instance on an unusable PostgreSQL URL: one line, not failing runs
register_configured_symbols()   # the symbol partitions of SYMBOLS exist on a fresh instance

defs = dg.Definitions(
    assets=[*raw_specs, *derived_assets, *research_assets],
    jobs=[capture_job, derive_job],
    sensors=all_sensors,
    resources={RESOURCE_KEY: HarvestSettings()},
    executor=dg.in_process_executor,
)
