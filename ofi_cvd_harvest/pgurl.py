"""PostgreSQL URLs as this project accepts them, stated once: the driver every URL must name
(SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which dagster-postgres cannot use;
docs/deploy.md "One box + PostgreSQL") and how a URL is shown without its password. Used by the
instance check (deploy/instance.py), the lease URL setting and the PostgreSQL lease."""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEME = "postgresql+psycopg2"
PREFIX = SCHEME + "://"


def printable(text: str) -> str:
    """One line whatever the input: control and non-ASCII characters escaped."""
    return text.encode("unicode_escape").decode("ascii")


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe for logs, error lines, ops rows)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return printable(url)
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return printable(parts._replace(netloc=f"{user}:***@{host}").geturl())
    except ValueError:   # e.g. an unclosed IPv6 bracket: show the scheme only
        return printable(url.split("://", 1)[0] + "://…")
