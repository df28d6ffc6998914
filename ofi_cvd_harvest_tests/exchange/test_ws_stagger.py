"""Redundant replicas keep their roll-overs apart (exchange/ws.py ``roll_phase``,
capture/redundancy.py ``stagger``): a reconnect at any moment does not move a replica's
roll-over phase, and no connection lives longer than ``rollover_sec``."""

from __future__ import annotations

import random

from ofi_cvd_harvest.capture.redundancy import stagger
from ofi_cvd_harvest.exchange.ws import WsFeed

R = 1000.0


def _feed(replica: int, redundancy: int = 2) -> WsFeed:
    delay, phase = stagger(replica, redundancy, R)
    f = WsFeed("ws://127.0.0.1:9/x", endpoint="market", on_message=lambda *a: None,
               rollover_sec=R, start_delay=delay, roll_phase=phase)
    f._roll_anchor = 0.0 + R - phase       # as run() sets it, with the start at t = 0
    return f


def test_replicas_roll_over_half_a_period_apart_whatever_their_reconnects():
    a, b = _feed(0), _feed(1)
    assert (a.start_delay, b.start_delay) == (0.0, 0.25)
    rng = random.Random(5)
    for _ in range(2000):
        opened_a, opened_b = rng.uniform(0, 50 * R), rng.uniform(0, 50 * R)
        da, db = a.roll_deadline(opened_a), b.roll_deadline(opened_b)
        assert opened_a < da <= opened_a + R and opened_b < db <= opened_b + R
        assert da % R == 0.0                      # replica 0: at k·R
        assert db % R == R / 2                    # replica 1: half a period later


def test_without_redundancy_the_deadline_is_the_connection_age():
    f = WsFeed("ws://127.0.0.1:9/x", endpoint="market", on_message=lambda *a: None,
               rollover_sec=R)
    assert f.roll_deadline(123.0) == 123.0 + R
