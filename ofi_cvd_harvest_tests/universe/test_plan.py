"""The shard planner's promises (universe/plan.py, docs/deploy.md "Capture shards"): balanced,
within the stream limit, deterministic, stable under listings and delistings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.universe.plan import (ShardPlan, plan_shards, room, shard_index,
                                           shard_name, shard_volumes, streams_per_connection)

names = st.from_regex(r"[A-Z][A-Z0-9]{1,7}USDT", fullmatch=True)
universes = st.dictionaries(names, st.floats(min_value=0, max_value=1e10, allow_nan=False),
                            min_size=0, max_size=60)


def _all(plan: ShardPlan) -> list[str]:
    return sorted(s for syms in plan.shards.values() for s in syms)


@hsettings(max_examples=150, deadline=None)
@given(universes, st.integers(1, 12))
def test_balanced_complete_and_deterministic(vols, n):
    plan = plan_shards(vols, n, 200)
    assert list(plan.shards) == [shard_name(i) for i in range(n)]
    assert _all(plan) == sorted(vols)                        # every symbol exactly once
    load = shard_volumes(plan, vols).values()
    biggest = max(vols.values(), default=0.0)
    assert max(load) <= min(load) + biggest + 1e-6 * max(1.0, biggest)
    again = plan_shards(dict(reversed(list(vols.items()))), n, 200)   # input order is no input
    assert again == plan and again.to_json() == plan.to_json()


@hsettings(max_examples=100, deadline=None)
@given(universes, st.integers(1, 6), st.integers(2, 30))
def test_stream_limit_respected_with_more_shards_when_needed(vols, n, limit):
    plan = plan_shards(vols, n, limit)
    cap = room(limit)
    assert all(streams_per_connection(len(s)) <= limit for s in plan.shards.values())
    assert len(plan.shards) == max(n, math.ceil(len(vols) / cap))
    assert _all(plan) == sorted(vols)


def test_room_counts_one_stream_per_endpoint():
    """aggTrade on /market, the book on /public: a symbol costs one stream per connection."""
    assert streams_per_connection(1) == 1 and room(200) == 200 and room(1) == 1


@hsettings(max_examples=150, deadline=None)
@given(universes, st.integers(1, 8), st.data())
def test_listings_join_without_moving_anyone_and_delistings_leave(vols, n, data):
    before = plan_shards(vols, n, 200)
    gone = set(data.draw(st.lists(st.sampled_from(sorted(vols)), unique=True), label="gone")
               if vols else [])
    new = data.draw(st.dictionaries(names, st.floats(0, 1e10), max_size=10), label="new")
    now = {s: v for s, v in vols.items() if s not in gone}
    now.update({s: v for s, v in new.items() if s not in vols})
    for s in now:   # volumes drift: kept symbols must not move anyway
        now[s] = now[s] * 3.0 if s in vols else now[s]
    after = plan_shards(now, n, 200, before)
    assert _all(after) == sorted(now)
    for s in now:
        if s in vols:
            assert after.shard_of(s) == before.shard_of(s), s
    assert not gone & set(_all(after))
    assert plan_shards(now, n, 200, ShardPlan.from_json(before.to_json())) == after


def test_new_listing_goes_to_the_lightest_shard():
    vols = {"BTCUSDT": 100.0, "ETHUSDT": 60.0, "SOLUSDT": 30.0, "XRPUSDT": 20.0}
    plan = plan_shards(vols, 2, 200)
    assert plan.shards == {"shard-00": ("BTCUSDT",), "shard-01": ("ETHUSDT", "SOLUSDT", "XRPUSDT")}
    later = plan_shards({**vols, "NEWUSDT": 5.0}, 2, 200, plan)
    assert later.shards["shard-00"] == ("BTCUSDT", "NEWUSDT")
    assert later.notes == ("listed: NEWUSDT",)
    gone = plan_shards({"BTCUSDT": 100.0, "ETHUSDT": 60.0, "NEWUSDT": 5.0}, 2, 200, later)
    assert gone.shards == {"shard-00": ("BTCUSDT", "NEWUSDT"), "shard-01": ("ETHUSDT",)}
    assert gone.notes == ("delisted: SOLUSDT, XRPUSDT",)


def test_ties_broken_by_name_so_the_plan_is_stable():
    vols = {s: 1.0 for s in ("DDDUSDT", "AAAUSDT", "CCCUSDT", "BBBUSDT")}
    assert plan_shards(vols, 2, 200).shards == {"shard-00": ("AAAUSDT", "CCCUSDT"),
                                                "shard-01": ("BBBUSDT", "DDDUSDT")}


def test_changing_the_shard_count_replans_from_scratch():
    vols = {f"S{i:02d}USDT": float(i + 1) for i in range(10)}
    plan3 = plan_shards(vols, 3, 200)
    plan4 = plan_shards(vols, 4, 200, plan3)
    assert plan4 == plan_shards(vols, 4, 200) and len(plan4.shards) == 4
    assert plan4.notes == ("re-planned from scratch (3 -> 4 shards)",)


def test_a_lowered_limit_that_overfills_a_shard_replans():
    vols = {f"S{i:02d}USDT": 1.0 for i in range(6)}
    plan = plan_shards(vols, 2, 200)          # 3 + 3
    replanned = plan_shards(vols, 2, 2, plan)  # 2 per shard: 3 shards, fresh
    assert len(replanned.shards) == 3 and all(len(s) == 2 for s in replanned.shards.values())


@pytest.mark.parametrize("vol", [math.nan, math.inf, -5.0, "12", None])
def test_hostile_volumes_count_as_zero(vol):
    plan = plan_shards({"AAAUSDT": vol, "BBBUSDT": 10.0, "CCCUSDT": 1.0}, 2, 200)
    assert shard_volumes(plan, {"AAAUSDT": vol, "BBBUSDT": 10.0, "CCCUSDT": 1.0}) == {
        "shard-00": 10.0, "shard-01": 1.0}


@pytest.mark.parametrize("text", [None, "", "{", "[]", '{"version": 2, "room": 1, "shards": {}}',
                                  '{"version": 1, "room": "x", "shards": {}}',
                                  '{"version": 1, "room": 5, "shards": []}',
                                  '{"version": 1}'])
def test_a_stored_plan_that_is_not_one_is_none(text):
    assert ShardPlan.from_json(text) is None


def test_a_foreign_previous_plan_is_not_kept():
    """A stored plan whose shards are not shard-00… (hand-edited) gives a fresh plan."""
    odd = ShardPlan({"a": ("BTCUSDT",), "b": ("ETHUSDT",)}, 200)
    vols = {"BTCUSDT": 1.0, "ETHUSDT": 2.0}
    assert plan_shards(vols, 2, 200, odd).shards == plan_shards(vols, 2, 200).shards


def test_shard_names_and_numbers():
    assert [shard_name(i) for i in (0, 7, 99, 123)] == ["shard-00", "shard-07", "shard-99",
                                                          "shard-123"]
    assert [shard_index(n) for n in ("shard-07", "shard-123", "shard-", "x-01", "BTCUSDT")] == [
        7, 123, None, None, None]
    with pytest.raises(ValueError):
        plan_shards({}, 0, 200)
