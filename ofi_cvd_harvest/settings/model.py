"""The typed settings objects, built from the table (``table.py``) so a setting is declared once.

``Settings`` holds the top-level and section settings as attributes (``settings.dedup_lru``,
``settings.book_levels``), ``settings.signals`` a :class:`SignalSettings` and
``settings.acceptance`` an :class:`AcceptanceCriteria`. All are frozen dataclasses whose defaults
are the table's; constructing one does not validate (tests build odd ones on purpose), loading
and :meth:`Settings.replace` do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .kinds import Invalid, Num, Numbers, SettingsError
from .table import BY_KEY, RELATIONS, TABLE, Setting


def _make(cls_name: str, entries: list[Setting], extra: list | None = None,
          namespace: dict | None = None, doc: str = "") -> type:
    fields = [(e.name, type(e.default), dataclasses.field(default=e.default)) for e in entries]
    ns = {"__module__": __name__, "__qualname__": cls_name, "__doc__": doc, **(namespace or {})}
    return dataclasses.make_dataclass(cls_name, fields + (extra or []), frozen=True, namespace=ns)


def _group_entries(attr: str) -> list[Setting]:
    return [e for e in TABLE if e.group == attr]


def _raw_dir(self) -> Path:
    return self.data_dir / "raw"


def _derived_dir(self) -> Path:
    return self.data_dir / "ofi_cvd"


def _replace(self, **changes: Any):
    """A validated copy with ``changes`` applied (e.g. CLI flags over the file)."""
    new = dataclasses.replace(self, **changes)
    validate(new)
    return new


AcceptanceCriteria = _make("AcceptanceCriteria", _group_entries("acceptance"),
                           doc="DoD thresholds (data_quality.acceptance_criteria).")
SignalSettings = _make("SignalSettings", _group_entries("signals"),
                       doc="Signal derivation parameters (signals).")
Settings = _make(
    "Settings", _group_entries(""),
    extra=[("acceptance", AcceptanceCriteria, dataclasses.field(default_factory=AcceptanceCriteria)),
           ("signals", SignalSettings, dataclasses.field(default_factory=SignalSettings))],
    namespace={"raw_dir": property(_raw_dir), "derived_dir": property(_derived_dir),
               "replace": _replace},
    doc="Every setting of a run, validated when loaded (README.md \"Settings\").")


def current(settings: Any, entry: Setting) -> Any:
    """The value of ``entry`` held by ``settings``."""
    holder = getattr(settings, entry.group) if entry.group else settings
    return getattr(holder, entry.name)


def invalid(name: str, value: Any, allowed: str, reason: str = "") -> SettingsError:
    """The one-line error every bad setting gets: its name, the value, what is allowed."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    why = f"{reason}; " if reason else ""
    return SettingsError(f"setting {name}: invalid value {shown} ({why}allowed: {allowed})")


def allowed_text(entry: Setting) -> str:
    return describe(entry.kind)


def describe(kind: Any) -> str:
    """What ``kind`` allows, for an error message ("integer 16..1048576", "one of delta, level")."""
    return f"{kind.type_name} {kind.allowed}" if isinstance(kind, (Num, Numbers)) else kind.allowed


def validate(settings: Any) -> None:
    """Raise :class:`SettingsError` for the first invalid setting, then the first broken rule
    between settings."""
    for entry in TABLE:
        value = current(settings, entry)
        try:
            entry.kind.check(value)
        except Invalid as exc:
            name = f"{entry.key} ({entry.env})" if entry.env else entry.key   # a flag or override
            raise invalid(name, value, allowed_text(entry), exc.reason) from None
    for rel in RELATIONS:
        if not rel.holds(settings):
            raise invalid(rel.key, current(settings, BY_KEY[rel.key]), rel.allowed(settings))

