"""The PostgreSQL URL of a shared Dagster instance, checked before Dagster sees it.

dagster-postgres hands ``postgres_url`` to SQLAlchemy. SQLAlchemy 2.1 maps a bare
``postgresql://`` to the psycopg 3 driver: without psycopg 3 installed every Dagster process
dies loading the instance (``No module named 'psycopg'``); with it installed the instance loads
and every run fails on its first event (``NOTIFY run_events, $1``: psycopg 3 binds server-side).
Only ``postgresql+psycopg2://`` works, so anything else is refused here with one line
(docs/deploy.md "One box + PostgreSQL"). Plain Python: no Dagster import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from ..pgurl import SCHEME, printable, redact  # noqa: F401 (redact: part of this module's API)
from ..settings import SettingsError

URL_ENV = "DAGSTER_POSTGRES_URL"
EXAMPLE = f"{SCHEME}://USER:PASSWORD@HOST:5432/DB"
WHY = ("SQLAlchemy 2.1 maps postgresql:// to psycopg 3, which dagster-postgres cannot use; "
       "docs/deploy.md")


class InstanceUrlError(SettingsError):
    """The instance's PostgreSQL URL is missing or unusable; ``str(err)`` is one line."""


def url_problem(url: str | None, name: str = URL_ENV) -> str | None:
    """One line saying why ``url`` cannot be the instance's PostgreSQL URL, or None if it can."""
    if url is None:
        return f"{name} is not set: export {name}={EXAMPLE}"
    if not url.strip():
        return f"{name} is empty: export {name}={EXAMPLE}"
    if url != url.strip() or any(not c.isprintable() or c.isspace() for c in url):
        return f"{name} contains spaces or control characters: {redact(url)!r}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"{name} is not a URL ({redact(url)}): expected {EXAMPLE}"
    if scheme == SCHEME:
        return None
    base, _, driver = scheme.partition("+")
    if base.lower() not in ("postgresql", "postgres"):
        return f"{name} must be a {SCHEME}:// URL, not {redact(url)}"
    fixed = redact(f"{SCHEME}://{rest}")
    got = f"driver {driver!r}" if driver else "no driver"
    return f"{name} names {got}: use {fixed} ({WHY})"


def check_url(url: str | None, name: str = URL_ENV) -> str:
    problem = url_problem(url, name)
    if problem:
        raise InstanceUrlError(problem)
    return url  # type: ignore[return-value]


def _postgres_urls(node, where: str = "") -> Iterator[tuple[str, object]]:
    """Every ``postgres_url`` in an instance config: (path in the file, value or ``{env: …}``)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "postgres_url":
                yield path, value
            else:
                yield from _postgres_urls(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _postgres_urls(value, f"{where}[{i}]")


def instance_problems(home: str | Path | None, env: Mapping[str, str] | None = None) -> list[str]:
    """Problems with the PostgreSQL URLs the instance config in ``home`` reads (a literal or an
    ``env:`` variable). Without a ``dagster.yaml`` there, ``DAGSTER_POSTGRES_URL`` when set."""
    env = os.environ if env is None else env
    config_file = Path(home) / "dagster.yaml" if home else None
    if config_file is None or not config_file.is_file():
        return [p for p in [url_problem(env[URL_ENV])] if p] if URL_ENV in env else []
    try:
        config = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [f"{config_file}: unreadable instance config ({printable(str(exc).splitlines()[0])})"]
    problems = []
    for path, value in _postgres_urls(config):
        if isinstance(value, Mapping) and "env" in value:
            var = str(value["env"])
            problem = url_problem(env.get(var), var)
            if problem and var not in env:
                problem += f" ({config_file} {path} reads it)"
        else:
            problem = url_problem(value if isinstance(value, str) else None,
                                  f"{path} in {config_file}")
        if problem:
            problems.append(problem)
    return problems


def check_instance(home: str | Path | None = None, env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`InstanceUrlError` (the first problem, one line) for the instance in ``home``
    (default ``$DAGSTER_HOME``): called where definitions load, so a code server or run worker
    on a bad URL stops with this line instead of failing runs later."""
    env = os.environ if env is None else env
    problems = instance_problems(home if home is not None else env.get("DAGSTER_HOME"), env)
    if problems:
        raise InstanceUrlError(problems[0])
