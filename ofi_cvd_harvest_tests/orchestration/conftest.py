"""Fixtures of the Dagster tests: ``instance``, a real temporary DagsterInstance per test."""

from __future__ import annotations

import dagster as dg
import pytest


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
