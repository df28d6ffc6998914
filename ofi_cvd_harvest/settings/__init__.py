"""Typed, validated settings: ``config/system.yaml`` (``data_harvest``) overridden by env vars.

One loader for every entry point (CLI, capture, simulator clients, Dagster assets) so a value
means the same thing everywhere. Every setting is declared once, in ``table.py`` (key, environment
name, type and range, default, meaning); the dataclasses, loading, validation, the one-line
errors and the README's settings table come from it. Invalid values and unknown keys fail fast
with :class:`SettingsError` naming the setting, because a 72-hour run must not discover a typo at
hour 40 (README.md "Settings").
"""

from .kinds import SYMBOL_RE, Invalid, SettingsError
from .loader import CONFIG_ENV, DEFAULT_CONFIG, collect, load_settings
from .model import AcceptanceCriteria, Settings, SignalSettings, describe, invalid, validate
from .table import BY_KEY, ENV_VARS, TABLE

__all__ = [
    "AcceptanceCriteria", "BY_KEY", "CONFIG_ENV", "DEFAULT_CONFIG", "ENV_VARS", "SYMBOL_RE",
    "Settings", "SettingsError", "SignalSettings", "TABLE", "check_value", "collect",
    "load_settings", "validate",
]


def check_value(name: str, value, key: str | None = None, kind=None):
    """Check one value outside the file (a CLI flag) with a table entry's ``kind`` (or ``kind``),
    raising the same one-line :class:`SettingsError` naming ``name``; returns ``value``."""
    kind = kind if kind is not None else BY_KEY[key].kind
    try:
        kind.check(value)
    except Invalid as exc:
        raise invalid(name, value, describe(kind), exc.reason) from None
    return value
