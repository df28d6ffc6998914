"""Fixtures: the lake tests' moto_server and per-test bucket behind a proxy (lake/conftest.py),
and a fresh PostgreSQL database per test on the session's server."""

from __future__ import annotations

import itertools
import os

import pytest

from ..lake.conftest import lake, moto  # noqa: F401  (fixtures reused, not copied)

_n = itertools.count()


@pytest.fixture
def lease_db(pg_server) -> str:
    """``postgresql+psycopg2://…`` of a fresh database for the test's leases."""
    return pg_server.create_db(f"lease_{os.getpid()}_{next(_n)}")
