"""The Dagster code location (``dagster dev -m ofi_cvd_harvest.definitions``).

Composes the orchestration modules into one ``Definitions``: raw tables as external assets,
the five derived assets and their DQ checks, ``capture_job`` and ``derive_job``, and the
sensors that keep the capture alive, report raw partitions and refresh derivations, and the
signal study assets (``orchestration/research_assets.py``, docs/research.md).
Runs execute in process by default: a derive run is one process computing the five tables in
order (cheaper than five subprocesses on a small machine), and a terminated capture run
receives the interrupt in its op directly. ``derive_job`` can also run each step in its own
process (run config ``execution: config: multiprocess: max_concurrent: N``); its steps then
share one computation of the partition through the disk (``signals/staging.py``).
"""

from __future__ import annotations

import dagster as dg

from .orchestration.assets import derive_job, derived_assets
from .orchestration.checks import all_checks
from .orchestration.jobs import capture_job
from .orchestration.raw_assets import raw_specs
from .orchestration.research_assets import research_assets
from .orchestration.resources import RESOURCE_KEY, HarvestSettings
from .orchestration.sensors import all_sensors

defs = dg.Definitions(
    assets=[*raw_specs, *derived_assets, *research_assets],
    asset_checks=list(all_checks),
    jobs=[capture_job, derive_job],
    sensors=all_sensors,
    resources={RESOURCE_KEY: HarvestSettings()},
    executor=dg.in_process_executor,
)
