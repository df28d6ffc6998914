"""The README's settings table, generated from the table (``table.py``) so it cannot drift:
a test compares README.md's section between the markers with :func:`markdown_table`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .table import TABLE

BEGIN = "<!-- settings-table:begin (generated: ofi-cvd-harvest settings --markdown) -->"
END = "<!-- settings-table:end -->"


def _default(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(_default(x) for x in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """One row per setting: key under ``data_harvest``, env variable, type, allowed, default, doc."""
    rows = ["| key (`data_harvest.…`) | environment | type | allowed | default | meaning |",
            "|---|---|---|---|---|---|"]
    for e in TABLE:
        rows.append("| " + " | ".join([
            f"`{e.key}`", f"`{e.env}`" if e.env else "", e.kind.type_name, _cell(e.kind.allowed),
            f"`{_default(e.default)}`", _cell(e.doc)]) + " |")
    return "\n".join(rows) + "\n"


def readme_section(text: str) -> str | None:
    """What ``text`` holds between the markers (None if they are missing)."""
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        return None
    return text[i + len(BEGIN):j].strip("\n") + "\n"


def update_readme(path: Path) -> bool:
    """Rewrite the section between the markers in ``path``; True if it changed."""
    text = path.read_text()
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        raise ValueError(f"{path}: markers {BEGIN!r} … {END!r} not found")
    new = text[:i + len(BEGIN)] + "\n" + markdown_table() + text[j:]
    if new != text:
        path.write_text(new)
    return new != text
