"""Derivation math (docs/signals.md): pure, vectorised polars/numpy functions of the raw
partitions — and, in ``zstream``/``cvdstream``/``eventstream``, the same engine as per-row state
machines for the live monitor (no polars/numpy imported there).

``derive.py`` composes them per date×symbol partition; the Dagster layer and the ``derive``
CLI only call :func:`ofi_cvd_harvest.signals.derive.derive_kind` / ``derive_all`` / ``write_kind``.
"""
