"""capture_sensor in shards mode against a real instance and the simulator on loopback: one
run per shard, tagged and routed to a host queue, the plan kept in the cursor; a listing joins
the lightest shard and a delisting leaves without moving anyone; the op's settings per shard."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from ofi_cvd_harvest.orchestration import sensors
from ofi_cvd_harvest.orchestration.resources import HarvestSettings
from ofi_cvd_harvest.orchestration.tags import GROUP_TAG, QUEUE_TAG, capture_run_tags
from ofi_cvd_harvest.sim.listings import Listings
from ofi_cvd_harvest.universe.market import fetch_universe
from ofi_cvd_harvest.universe.plan import ShardPlan, plan_shards

from .test_sensors import _evaluate, _origin

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "NEWUSDT"]
ENV = ("SYMBOLS", "CAPTURE_SYMBOL_GROUPS", "DATA_DIR", "CAPTURE_UNIVERSE", "CAPTURE_SHARDS",
       "CAPTURE_HOST_QUEUES", "CAPTURE_SHARD", "REST_BASE_URL")


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory(SYMBOLS, seed=2, listings=Listings({"NEWUSDT": "PENDING_TRADING"},
                                                                ["BTCUSDT"], seed=2))


@pytest.fixture
def harvest(tmp_path, monkeypatch, sim):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAPTURE_UNIVERSE", "shards")
    monkeypatch.setenv("CAPTURE_SHARDS", "2")
    monkeypatch.setenv("CAPTURE_HOST_QUEUES", "host-a,host-b")
    monkeypatch.setenv("REST_BASE_URL", sim.rest_url)
    return HarvestSettings(data_dir=str(tmp_path / "data"))


def _start(instance, req) -> dg.DagsterRun:
    """What the daemon does with a request: a run with its tags and config (here STARTED)."""
    run = dg.DagsterRun(job_name="capture_job", run_id=make_new_run_id(),
                        status=dg.DagsterRunStatus.STARTED, tags=req.tags,
                        run_config=req.run_config, remote_job_origin=_origin("capture_job"))
    instance.add_run(run)
    return run


def test_one_run_per_shard_tagged_routed_and_planned(instance, harvest, sim):
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    expected = plan_shards(fetch_universe(sim.rest_url).volumes, 2, 200)
    assert ShardPlan.from_json(result.cursor) == expected
    assert "NEWUSDT" not in expected.symbols()                    # pending: not yet
    assert not any("_" in s for s in expected.symbols())          # the quarterly: never
    reqs = result.run_requests
    assert [r.tags[GROUP_TAG] for r in reqs] == ["shard-00", "shard-01"]
    assert [r.tags[QUEUE_TAG] for r in reqs] == ["host-a", "host-b"]
    assert [r.run_key for r in reqs] == ["capture:shard-00:first", "capture:shard-01:first"]
    for r in reqs:
        cfg = r.run_config["ops"]["capture"]["config"]
        assert cfg == {"symbols": list(expected.shards[r.tags[GROUP_TAG]]),
                       "shard": r.tags[GROUP_TAG]}
        assert r.tags["ofi_cvd/role"] == "capture" and int(r.tags["dagster/max_runtime"]) > 3600
        assert dg.validate_run_config(sensors.capture_job, r.run_config)   # the op accepts it


def test_listing_and_delisting_follow_on_the_next_evaluation(instance, harvest, sim):
    first = _evaluate(sensors.capture_sensor, instance, harvest)
    runs = {r.tags[GROUP_TAG]: _start(instance, r) for r in first.run_requests}
    before = ShardPlan.from_json(first.cursor)
    sim.call(lambda: sim.sim.rest.listings.set_status("NEWUSDT", "TRADING"))
    sim.call(lambda: sim.sim.rest.listings.set_status("SOLUSDT", "SETTLING"))

    second = _evaluate(sensors.capture_sensor, instance, harvest, cursor=first.cursor)
    assert not second.run_requests                                # both shards have a live run
    after = ShardPlan.from_json(second.cursor)
    assert "NEWUSDT" in after.symbols() and "SOLUSDT" not in after.symbols()
    for sym in before.symbols():
        if sym != "SOLUSDT":
            assert after.shard_of(sym) == before.shard_of(sym)     # nobody moved
    msg = second.skip_reason.skip_message
    assert "listed: NEWUSDT" in msg and "delisted: SOLUSDT" in msg
    assert "+NEWUSDT" in msg and "-SOLUSDT" in msg and "next launch" in msg

    # the shard gaining NEWUSDT finishes its run: relaunched at once with the new symbols
    shard = after.shard_of("NEWUSDT")
    instance.report_run_canceled(runs[shard])
    done = dg.DagsterRun(job_name="capture_job", run_id=make_new_run_id(),
                         status=dg.DagsterRunStatus.SUCCESS,
                         tags=capture_run_tags(before.shards[shard], 3600, name=shard),
                         remote_job_origin=_origin("capture_job"))
    instance.add_run(done)
    third = _evaluate(sensors.capture_sensor, instance, harvest, cursor=second.cursor)
    (req,) = third.run_requests
    assert req.tags[GROUP_TAG] == shard and req.run_key == f"capture:{shard}:after:{done.run_id}"
    assert req.run_config["ops"]["capture"]["config"]["symbols"] == list(after.shards[shard])


def test_exchange_unreachable_keeps_the_plan(instance, harvest, sim, monkeypatch):
    first = _evaluate(sensors.capture_sensor, instance, harvest)
    for r in first.run_requests:
        _start(instance, r)
    monkeypatch.setenv("REST_BASE_URL", "http://127.0.0.1:9")
    kept = _evaluate(sensors.capture_sensor, instance, harvest, cursor=first.cursor)
    assert kept.cursor == first.cursor and not kept.run_requests
    assert "universe not refreshed, keeping the shard plan" in kept.skip_reason.skip_message
    fresh = _evaluate(sensors.capture_sensor, instance, harvest)     # no plan to keep
    assert not fresh.run_requests and "no shard plan yet" in fresh.skip_reason.skip_message


def test_no_host_queues_no_queue_tag(instance, harvest, monkeypatch):
    monkeypatch.delenv("CAPTURE_HOST_QUEUES")
    monkeypatch.setenv("CAPTURE_SHARDS", "3")
    reqs = _evaluate(sensors.capture_sensor, instance, harvest).run_requests
    assert len(reqs) == 3 and not any(QUEUE_TAG in r.tags for r in reqs)


def test_the_op_runs_a_shard_with_its_own_artifacts_and_port(harvest):
    from ofi_cvd_harvest.orchestration.jobs import CaptureConfig, effective_settings

    base = harvest.settings()
    s, _ = effective_settings(harvest, CaptureConfig(symbols=["ETHUSDT"], shard="shard-03",
                                                     run_seconds=5))
    assert s.shard == "shard-03" and s.symbols == ("ETHUSDT",)
    assert s.artifacts_dir == base.artifacts_dir / "shards" / "shard-03"
    assert s.prometheus_port == base.prometheus_port + 3
    with pytest.raises(Exception, match="capture.shard"):
        effective_settings(harvest, CaptureConfig(shard="../x", run_seconds=5))
