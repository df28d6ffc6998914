"""What a setting may hold: each kind parses a raw value (YAML node or environment string),
checks an already-typed value, and says in a few words what it allows.

The same words appear in the one-line error and in the README's settings table, so a user reads
the allowed range once, in the same form, wherever they meet it (README.md "Settings").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..pgurl import PREFIX as PG_PREFIX

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")   # a shard, a queue: up to 63


class SettingsError(ValueError):
    """A setting is missing or invalid; ``str(err)`` is one line naming it."""


class Invalid(Exception):
    """Raised by a kind for a value it refuses; ``reason`` (optional) says more than the range."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _number(raw: Any, integer: bool) -> int | float:
    """A finite int/float from a YAML number or a string; ``bool`` is not a number."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise Invalid()
    v: int | float = raw  # type: ignore[assignment]
    if isinstance(raw, str):
        text = raw.strip()
        try:
            v = int(text)
        except ValueError:
            try:
                v = float(text)
            except ValueError:
                raise Invalid() from None
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Invalid("not finite")
        if integer:
            if not v.is_integer():
                raise Invalid("not a whole number")
            v = int(v)
    return v if integer else float(v)



def _stripped(kind: Any, raw: Any) -> str:
    """A text setting: a string, surrounding blanks dropped, then the kind's ``check``."""
    if not isinstance(raw, str):
        raise Invalid()
    v = raw.strip()
    kind.check(v)
    return v

@dataclass(frozen=True)
class Num:
    """An integer or a finite float within optional bounds (``gt``/``ge``/``lt``/``le``)."""

    integer: bool
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    note: str = ""

    @property
    def type_name(self) -> str:
        return "integer" if self.integer else "number"

    @property
    def allowed(self) -> str:
        lo = (f"> {_fmt(self.gt)}" if self.gt is not None
              else f">= {_fmt(self.ge)}" if self.ge is not None else "")
        hi = (f"< {_fmt(self.lt)}" if self.lt is not None
              else f"<= {_fmt(self.le)}" if self.le is not None else "")
        if self.ge is not None and self.le is not None:
            text = f"{_fmt(self.ge)}..{_fmt(self.le)}"
        else:
            text = " and ".join(p for p in (lo, hi) if p) or "any"
        return f"{text} ({self.note})" if self.note else text

    def parse(self, raw: Any) -> int | float:
        v = _number(raw, self.integer)
        self.check(v)
        return v

    def check(self, v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int if self.integer else (int, float)):
            raise Invalid()
        if not math.isfinite(v):
            raise Invalid("not finite")
        if ((self.gt is not None and not v > self.gt) or (self.ge is not None and not v >= self.ge)
                or (self.lt is not None and not v < self.lt)
                or (self.le is not None and not v <= self.le)):
            raise Invalid()


def Int(**bounds: Any) -> Num:
    return Num(True, **bounds)


def Float(**bounds: Any) -> Num:
    return Num(False, **bounds)


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words (or integers); ``upper`` folds words to upper case."""

    options: tuple
    upper: bool = False

    @property
    def type_name(self) -> str:
        return "integer" if isinstance(self.options[0], int) else "word"

    @property
    def allowed(self) -> str:
        return "one of " + ", ".join(str(o) for o in self.options)

    def parse(self, raw: Any) -> Any:
        if isinstance(self.options[0], int):
            v: Any = _number(raw, True)
        elif isinstance(raw, str):
            v = raw.strip().upper() if self.upper else raw.strip()
        else:
            raise Invalid()
        self.check(v)
        return v

    def check(self, v: Any) -> None:
        if isinstance(v, bool) or v not in self.options:
            raise Invalid()


@dataclass(frozen=True)
class Text:
    """A non-empty string without whitespace; ``schemes`` restricts it to URLs."""

    schemes: tuple[str, ...] = ()
    what: str = "host name or address"

    @property
    def type_name(self) -> str:
        return "URL" if self.schemes else "text"

    @property
    def allowed(self) -> str:
        return " or ".join(self.schemes) + " URL" if self.schemes else self.what

    def parse(self, raw: Any) -> str:
        return _stripped(self, raw)

    def check(self, v: Any) -> None:
        if not isinstance(v, str) or not v or any(c.isspace() for c in v):
            raise Invalid()
        if self.schemes and (not v.startswith(self.schemes) or "://" == v[-3:]):
            raise Invalid()


@dataclass(frozen=True)
class PathKind:
    """A filesystem path (relative paths are relative to the working directory)."""

    type_name: str = "path"
    allowed: str = "a directory path"

    def parse(self, raw: Any) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise Invalid()
        return Path(raw.strip())

    def check(self, v: Any) -> None:
        if not isinstance(v, Path) or not str(v):
            raise Invalid()


@dataclass(frozen=True)
class DataRootKind(PathKind):
    """A directory path, or an S3-compatible lake ``s3://bucket/prefix`` (docs/deploy.md)."""

    allowed: str = "a directory path or s3://bucket/prefix"

    def parse(self, raw: Any):
        from ..storage.objectstore import LakeUrl, is_url

        if isinstance(raw, str) and "://" in raw:
            if not is_url(raw.strip()):
                raise Invalid("only s3:// URLs name an object store")
            try:
                return LakeUrl(raw.strip())
            except ValueError as exc:
                raise Invalid(str(exc)) from None
        return super().parse(raw)

    def check(self, v: Any) -> None:
        from ..storage.objectstore import LakeUrl

        if not isinstance(v, LakeUrl):
            super().check(v)


@dataclass(frozen=True)
class Name:
    """Empty (unset) or a short name for a file, a lock and a log line: a capture shard."""

    type_name: str = "name"
    allowed: str = "empty, or letters, digits, . _ - (up to 63, a letter or digit first)"

    def parse(self, raw: Any) -> str:
        return _stripped(self, raw)

    def check(self, v: Any) -> None:
        if not isinstance(v, str) or (v and not NAME_RE.match(v)):
            raise Invalid()


@dataclass(frozen=True)
class LeaseUrl:
    """Empty (no lease) or where capture leases live (docs/capture.md "Leases")."""

    schemes: tuple[str, ...] = (PG_PREFIX, "s3://")
    type_name: str = "URL"
    allowed: str = "empty, postgresql+psycopg2://… or s3://bucket/prefix"

    def parse(self, raw: Any) -> str:
        return _stripped(self, raw)

    def check(self, v: Any) -> None:
        if not isinstance(v, str) or any(c.isspace() for c in v):
            raise Invalid()
        if v.startswith(("postgresql://", "postgres://")):
            raise Invalid(f"name the driver: {PG_PREFIX}")
        if v and (not v.startswith(self.schemes) or v.endswith("://")):
            raise Invalid()


def _items(raw: Any) -> list:
    """A YAML list, or a comma-separated string (the environment's form)."""
    if isinstance(raw, str):
        return [x.strip() for x in raw.split(",") if x.strip()]
    if isinstance(raw, list):
        return raw
    raise Invalid()


@dataclass(frozen=True)
class Symbols:
    """Exchange symbols, upper-cased; they name directories, so the pattern is strict."""

    type_name: str = "list"
    allowed: str = "one or more symbols, each ^[A-Z0-9]{2,20}$, no duplicates"
    optional: bool = False      # True: an empty list is allowed

    def parse(self, raw: Any) -> tuple[str, ...]:
        items = _items(raw) if raw is not None or not self.optional else []
        if not all(isinstance(x, str) for x in items):
            raise Invalid()
        v = tuple(x.strip().upper() for x in items)
        self.check(v)
        return v

    def check(self, v: Any) -> None:
        if not isinstance(v, tuple) or (not v and not self.optional):
            raise Invalid()
        for sym in v:
            if not isinstance(sym, str) or not SYMBOL_RE.match(sym):
                raise Invalid(f"symbol {str(sym)[:40]!r}")
        if len(set(v)) != len(v):
            raise Invalid("duplicate symbol")


@dataclass(frozen=True)
class Numbers:
    """A non-empty list of finite floats, each within ``each``."""

    each: Num

    @property
    def type_name(self) -> str:
        return "list of numbers"

    @property
    def allowed(self) -> str:
        return f"each {self.each.allowed}"

    def parse(self, raw: Any) -> tuple[float, ...]:
        v = tuple(self.each.parse(x) for x in _items(raw))
        self.check(v)
        return v

    def check(self, v: Any) -> None:
        if not isinstance(v, tuple) or not v:
            raise Invalid()
        for x in v:
            self.each.check(x)


@dataclass(frozen=True)
class Day:
    """A calendar date ``YYYY-MM-DD`` (kept as the string: partition keys are strings)."""

    type_name: str = "date"
    allowed: str = "YYYY-MM-DD"

    def parse(self, raw: Any) -> str:
        v = raw.isoformat() if hasattr(raw, "isoformat") and not isinstance(raw, str) else raw
        if not isinstance(v, str):
            raise Invalid()
        return _stripped(self, v)

    def check(self, v: Any) -> None:
        import datetime as dt

        if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise Invalid()
        try:
            dt.date.fromisoformat(v)
        except ValueError:
            raise Invalid("no such day") from None


@dataclass(frozen=True)
class Names:
    """Names (see :class:`Name`), comma-separated in the environment; may be empty."""

    type_name: str = "list"
    allowed: str = "names (letters, digits, . _ -), no duplicates; empty = none"

    def parse(self, raw: Any) -> tuple[str, ...]:
        items = _items(raw) if raw is not None else []
        if not all(isinstance(x, str) for x in items):
            raise Invalid()
        v = tuple(x.strip() for x in items)
        self.check(v)
        return v

    def check(self, v: Any) -> None:
        if not isinstance(v, tuple) or not all(isinstance(x, str) and NAME_RE.match(x) for x in v):
            raise Invalid()
        if len(set(v)) != len(v):
            raise Invalid("duplicate name")


@dataclass(frozen=True)
class Groups:
    """Symbol groups: ``"BTCUSDT,ETHUSDT;SOLUSDT"`` in the environment, a list of lists in the
    file; empty = one group with every symbol. A symbol belongs to one group only."""

    type_name: str = "groups"
    allowed: str = "symbol lists separated by ; (each ^[A-Z0-9]{2,20}$, in one group only); empty = none"

    def parse(self, raw: Any) -> tuple[tuple[str, ...], ...]:
        if isinstance(raw, str):
            parts: list = [p for p in raw.split(";") if p.strip()]
        elif isinstance(raw, list):
            parts = raw
        elif raw is None:
            parts = []
        else:
            raise Invalid()
        groups = []
        for part in parts:
            items = _items(part)
            if not all(isinstance(x, str) for x in items):
                raise Invalid()
            if items:
                groups.append(tuple(x.strip().upper() for x in items))
        v = tuple(groups)
        self.check(v)
        return v

    def check(self, v: Any) -> None:
        if not isinstance(v, tuple):
            raise Invalid()
        seen: set[str] = set()
        for group in v:
            if not isinstance(group, tuple) or not group:
                raise Invalid()
            for sym in group:
                if not isinstance(sym, str) or not SYMBOL_RE.match(sym):
                    raise Invalid(f"symbol {str(sym)[:40]!r}")
                if sym in seen:
                    raise Invalid(f"{sym} in two groups")
                seen.add(sym)


@dataclass(frozen=True)
class Flag:
    """On or off: ``true/false``, ``1/0``, ``yes/no``, ``on/off``."""

    type_name: str = "flag"
    allowed: str = "true or false (1/0, yes/no, on/off)"

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower() if isinstance(raw, (str, int)) else None
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise Invalid()

    def check(self, v: Any) -> None:
        if not isinstance(v, bool):
            raise Invalid()


Kind = (Num | Choice | Text | PathKind | DataRootKind | Symbols | Numbers | Day | Name | Names
        | Groups | Flag | LeaseUrl)
