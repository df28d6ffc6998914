"""Load settings: ``config/system.yaml`` (``data_harvest``), then environment variables, then
typed overrides (CLI flags) — every value parsed and range-checked by its table entry.

Anything the table does not know is refused with a "did you mean" suggestion: a misspelt
section (``data_harvst:``) used to make the whole file ignored, so the capture fell back to the
real Binance hosts (README.md "Settings").
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from .kinds import Invalid, SettingsError
from .model import AcceptanceCriteria, Settings, SignalSettings, allowed_text, invalid, validate
from .table import TABLE, Setting

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "system.yaml"
ROOT_KEY = "data_harvest"
CONFIG_ENV = "OFI_CVD_CONFIG"


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        super().__init__(f"key {key!r} appears twice in one section (line {line})")


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently,
    so a second ``websocket:`` section would quietly replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":   # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)):
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _tree() -> dict:
    """The table as nested sections: {"websocket": {"ping_interval": Setting, ...}, ...}."""
    root: dict = {}
    for entry in TABLE:
        *sections, leaf = entry.key.split(".")
        node = root
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = entry
    return {ROOT_KEY: root}


def _section_paths(tree: dict, where: tuple = ()) -> list[tuple[str, ...]]:
    out = []
    for k, sub in tree.items():
        out.append(where + (k,))
        if isinstance(sub, dict):
            out += _section_paths(sub, where + (k,))
    return out


def _describe(node: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(node), type(node).__name__)


def _unknown(path: Path, where: tuple, key: Any, here: dict) -> SettingsError:
    """Unknown key: suggest a close key in the same section, else the same or a close name
    anywhere (a key put in the wrong section), else list what the section allows."""
    key = str(key)
    if not key.isprintable() or len(key) > 60:     # the message stays one readable line
        key = repr(key[:60])
    full = ".".join(where + (key,))
    hint = ""
    close = difflib.get_close_matches(key, [str(k) for k in here], n=1, cutoff=0.6)
    if close:
        hint = ".".join(where + (close[0],))
    else:
        everywhere = _section_paths(_tree())
        lasts = sorted({p[-1] for p in everywhere})
        close = difflib.get_close_matches(key, lasts, n=1, cutoff=0.75)
        if close:
            hint = " or ".join(".".join(p) for p in everywhere if p[-1] == close[0])
    tail = f"did you mean {hint}?" if hint else "allowed here: " + ", ".join(map(str, here))
    return SettingsError(f"config {path}: unknown setting {full} ({tail})")


def _walk(node: Any, here: dict, where: tuple, path: Path, out: dict) -> None:
    if node is None:    # an empty section: all defaults
        return
    if not isinstance(node, dict):
        name = ".".join(where[1:]) or ROOT_KEY
        raise invalid(name, node, f"a mapping of {name}.* settings", f"{_describe(node)}")
    for key, value in node.items():
        sub = here.get(key) if isinstance(key, str) else None
        if sub is None:
            raise _unknown(path, where, key, here)
        if isinstance(sub, Setting):
            try:
                out[sub.key] = (sub.kind.parse(value), str(path))
            except Invalid as exc:
                raise invalid(sub.key, value, allowed_text(sub), exc.reason) from None
        else:
            _walk(value, sub, where + (key,), path, out)


def config_file(config_path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The file to read: ``config_path`` (``--config``), else ``$OFI_CVD_CONFIG``, else the
    shipped ``config/system.yaml`` if present. A file that was asked for must exist."""
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise SettingsError(f"config {path}: file not found")
        return path
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        if not path.is_file():
            raise invalid(CONFIG_ENV, env[CONFIG_ENV], "path of an existing config file",
                          "file not found")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def read_config(path: Path) -> dict[str, tuple[Any, str]]:
    """{key: (typed value, source)} for every setting ``path`` gives."""
    try:
        doc = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise SettingsError(f"config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"config {path}: not valid YAML{where} "
                            f"({getattr(exc, 'problem', None) or exc.__class__.__name__})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config {path}: unreadable ({exc.__class__.__name__})") from None
    if doc is not None and not isinstance(doc, dict):
        raise SettingsError(f"config {path}: the document is {_describe(doc)} "
                            f"(allowed: a mapping with one key, {ROOT_KEY})")
    out: dict[str, tuple[Any, str]] = {}
    tree = _tree()
    for key, value in (doc or {}).items():
        if key not in tree:
            raise _unknown(path, (), key, tree)
        _walk(value, tree[ROOT_KEY], (ROOT_KEY,), path, out)
    return out


def read_env(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """{key: (typed value, variable)} for every setting the environment overrides."""
    out: dict[str, tuple[Any, str]] = {}
    for entry in TABLE:
        raw = env.get(entry.env) if entry.env else None
        if raw is None or raw == "":
            continue
        try:
            out[entry.key] = (entry.kind.parse(raw), entry.env)
        except Invalid as exc:
            raise invalid(f"{entry.env} ({entry.key})", raw, allowed_text(entry),
                          exc.reason) from None
    return out


def collect(config_path: str | Path | None = None,
            env: Mapping[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    """{key: (value, source)} for every setting: the file, then the environment, else the
    default (source ``default``)."""
    env = os.environ if env is None else env
    path = config_file(config_path, env)
    values = {e.key: (e.default, "default") for e in TABLE}
    if path is not None:
        values.update(read_config(path))
    values.update(read_env(env))
    return values


def build(values: Mapping[str, Any]) -> Settings:
    """``Settings`` from {key: typed value} (missing keys keep their defaults); not validated."""
    groups: dict[str, dict[str, Any]] = {"": {}, "signals": {}, "acceptance": {}}
    for entry in TABLE:
        if entry.key in values:
            groups[entry.group][entry.name] = values[entry.key]
    return Settings(**groups[""], signals=SignalSettings(**groups["signals"]),
                    acceptance=AcceptanceCriteria(**groups["acceptance"]))


def load_settings(
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load ``config_path`` (default ``config/system.yaml`` or ``$OFI_CVD_CONFIG``), apply env
    overrides, then keyword ``overrides`` (already-typed ``Settings`` attributes, e.g. from CLI
    flags). Raises :class:`SettingsError` (one line naming the setting) for anything invalid."""
    values = collect(config_path, env)
    settings = build({k: v for k, (v, _) in values.items()})
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    validate(settings)
    return settings
