"""Derivation math (SPEC §5): pure, vectorised polars/numpy functions of the raw partitions.

``derive.py`` composes them per date×symbol partition; the Dagster layer and the ``derive``
CLI only call :func:`ofi_cvd_harvest.signals.derive.derive_kind` / ``derive_all`` / ``write_kind``.
"""
