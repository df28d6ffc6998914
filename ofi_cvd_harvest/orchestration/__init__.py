"""The thin Dagster layer: assets, checks, jobs, sensors and resources composing the plain
packages (capture, signals, dq). ``ofi_cvd_harvest.definitions`` exposes the Definitions."""
