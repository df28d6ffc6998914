"""Shared fixtures: a running local exchange simulator on an ephemeral loopback port.

``simulator``          a SimulatorThread (BTCUSDT, ETHUSDT, seed 7, speed 1, no faults)
``simulator_factory``  ``make(symbols=..., seed=..., speed=..., faults=..., **Simulator kwargs)``
                       -> started SimulatorThread; every one is stopped at teardown
``module_simulator_factory``  the same, stopped at the end of the test module
``pg_server``            a real PostgreSQL cluster (session-scoped; servers/postgres.py)
Both expose ``ws_url`` / ``rest_url`` (point the capture's WS_BASE_URL / REST_BASE_URL at them),
``ground_truth(symbol)``, ``stats`` and ``dump_trades(path)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ofi_cvd_harvest.sim.server import SimulatorThread


def _simulators() -> Iterator[Callable[..., SimulatorThread]]:
    started: list[SimulatorThread] = []

    def make(symbols: tuple[str, ...] | list[str] = ("BTCUSDT", "ETHUSDT"), **kwargs: Any
             ) -> SimulatorThread:
        kwargs.setdefault("seed", 7)
        sim = SimulatorThread(list(symbols), **kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., SimulatorThread]]:
    yield from _simulators()


@pytest.fixture(scope="module")
def module_simulator_factory() -> Iterator[Callable[..., SimulatorThread]]:
    """As ``simulator_factory``, stopped after the module: one server shared by its tests."""
    yield from _simulators()


@pytest.fixture
def simulator(simulator_factory: Callable[..., SimulatorThread]) -> SimulatorThread:
    return simulator_factory()


@pytest.fixture(scope="session")
def pg_server() -> Iterator["PostgresServer"]:
    """One real PostgreSQL cluster per test session (servers/postgres.py); tests create their
    own databases in it (``pg_server.create_db(name)``)."""
    from .servers.postgres import PostgresServer
    server = PostgresServer().start()
    yield server
    server.stop()
