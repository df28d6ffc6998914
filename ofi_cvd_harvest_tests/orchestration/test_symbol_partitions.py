"""The symbol dimension follows what is captured (docs/dagster.md "Partitions"): a symbol listed
at runtime gets its partitions from capture_sensor, is captured for real from the simulator,
its raw files are reported and derive_sensor requests its derivation (resolved by Dagster against
the instance's partitions, as the daemon does); a delisted symbol keeps its partitions and its
past data stays reported and derivable; the raw tree adds what no sensor captured, and only
valid names."""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import pytest

from ofi_cvd_harvest.definitions import defs
from ofi_cvd_harvest.orchestration import sensors
from ofi_cvd_harvest.orchestration.partitions import known_symbols, register_symbols
from ofi_cvd_harvest.orchestration.resources import HarvestSettings
from ofi_cvd_harvest.sim.listings import Listings

from .rawfixtures import write_raw
from .test_sensors import _apply, _evaluate

pytest.importorskip("ofi_cvd_harvest.capture.runner")

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "NEWUSDT"]


def _day(t: float, days: int = 0) -> str:
    return (dt.datetime.fromtimestamp(t, tz=dt.timezone.utc) + dt.timedelta(days=days)
            ).strftime("%Y-%m-%d")


def _resolved(sensor, instance, harvest, cursor=None):
    """The sensor evaluated as the code server does for the daemon (with an instance ref):
    run requests resolved against the job's partitions, an unknown partition key an error."""
    ctx = dg.build_sensor_context(instance_ref=instance.get_ref(), cursor=cursor,
                                  definitions=defs, resources={"harvest": harvest})
    return sensor.evaluate_tick(ctx)


def test_a_listing_is_captured_partitioned_and_derived_a_delisting_keeps_its_past(
        instance, tmp_path, monkeypatch, simulator_factory):
    sim = simulator_factory(SYMBOLS, seed=3, listings=Listings({"NEWUSDT": "PENDING_TRADING"},
                                                               seed=3))
    data = tmp_path / "data"
    for var in ("SYMBOLS", "CAPTURE_SYMBOL_GROUPS", "EXTRA_PARTITION_SYMBOLS", "CAPTURE_SHARD",
                "CAPTURE_HOST_QUEUES"):
        monkeypatch.delenv(var, raising=False)
    for k, v in {"CAPTURE_UNIVERSE": "shards", "CAPTURE_SHARDS": "1", "WS_BASE_URL": sim.ws_url,
                 "REST_BASE_URL": sim.rest_url, "DATA_DIR": str(data),
                 "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "PROMETHEUS_PORT": "0",
                 "PARQUET_ROTATE_SEC": "2"}.items():
        monkeypatch.setenv(k, v)
    harvest = HarvestSettings(data_dir=str(data))
    midnight = dt.datetime.strptime(_day(time.time()), "%Y-%m-%d").replace(
        tzinfo=dt.timezone.utc).timestamp()
    # a clock past the closed day's grace, so yesterday's final is due whatever the hour
    monkeypatch.setattr(sensors, "now",
                        lambda: max(time.time(), midnight + sensors.FINAL_GRACE_SEC + 1))
    today, yesterday = _day(sensors.now()), _day(sensors.now(), -1)

    first = _apply(instance, _evaluate(sensors.capture_sensor, instance, harvest))
    assert known_symbols(instance) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]   # NEWUSDT pending
    write_raw(data, yesterday, "SOLUSDT", minutes=2)        # SOLUSDT captured yesterday

    sim.call(lambda: sim.sim.rest.listings.set_status("NEWUSDT", "TRADING"))
    sim.call(lambda: sim.sim.rest.listings.set_status("SOLUSDT", "SETTLING"))
    second = _evaluate(sensors.capture_sensor, instance, harvest, cursor=first.cursor)
    (add,) = second.dynamic_partitions_requests           # an addition only: no deletion
    assert isinstance(add, dg.AddDynamicPartitionsRequest) and list(add.partition_keys) == ["NEWUSDT"]
    _apply(instance, second)
    assert known_symbols(instance) == ["BTCUSDT", "ETHUSDT", "NEWUSDT", "SOLUSDT"]

    # the shard's run (no run yet: requested again, with the listing) captures NEWUSDT for real
    (req,) = second.run_requests
    config = req.run_config["ops"]["capture"]["config"]
    assert "NEWUSDT" in config["symbols"] and "SOLUSDT" not in config["symbols"]
    run = defs.get_job_def("capture_job").execute_in_process(
        run_config={"ops": {"capture": {"config": {**config, "run_seconds": 6}}}},
        instance=instance)
    new = run.output_for_node("capture")["symbols"]["NEWUSDT"]
    assert run.success and new["trades_ws"] + new.get("trades_healed", 0) > 0

    # its raw partition of today and SOLUSDT's of yesterday are reported
    raw = _evaluate(sensors.raw_partitions_sensor, instance, harvest)
    assert not raw.dynamic_partitions_requests
    for e in raw.asset_events:
        instance.report_runless_asset_event(e)
    filled = instance.get_materialized_partitions(dg.AssetKey("raw_agg_trade"))
    assert {f"{today}|NEWUSDT", f"{yesterday}|SOLUSDT"} <= filled

    # derive_sensor: today's NEWUSDT refreshed, SOLUSDT's closed day finalised
    tick = _resolved(sensors.derive_sensor, instance, harvest)
    keys = {r.partition_key: r.tags["ofi_cvd/trigger"] for r in tick.run_requests}
    assert keys[f"{today}|NEWUSDT"] == "refresh" and keys[f"{yesterday}|SOLUSDT"] == "final"
    assert all(r.tags["dagster/partition"] == r.partition_key for r in tick.run_requests)


def test_raw_tree_symbols_join_valid_names_only(instance, tmp_path, monkeypatch):
    """Data no sensor captured (a replay, an older capture) get their partitions from the
    raw tree; a directory whose name is no symbol (a ``|``, lower case, a path) does not."""
    for var in ("SYMBOLS", "CAPTURE_SYMBOL_GROUPS", "DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    harvest = HarvestSettings(data_dir=str(data))
    write_raw(data, "2024-07-19", "XRPUSDT", minutes=1)
    for bad in ("BTC|USDT", "btcusdt", "..", "A"):
        (data / "raw" / "date=2024-07-19" / f"symbol={bad}" / "stream=agg_trade").mkdir(parents=True)
    monkeypatch.setattr(sensors, "now", lambda: dt.datetime(
        2024, 7, 20, 12, tzinfo=dt.timezone.utc).timestamp())
    first = _evaluate(sensors.raw_partitions_sensor, instance, harvest)
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["XRPUSDT"]]
    _apply(instance, first)
    assert known_symbols(instance) == ["XRPUSDT"]
    second = _evaluate(sensors.raw_partitions_sensor, instance, harvest, cursor=first.cursor)
    assert {str(e.partition) for e in second.asset_events} == {"2024-07-19|XRPUSDT"}
    # adding is idempotent and refuses what is not a symbol
    assert register_symbols(instance, ["XRPUSDT", "BTC|USDT", "../x", ""]) == []
    assert known_symbols(instance) == ["XRPUSDT"]


def test_a_universe_day_is_finalised_once_per_symbol(tmp_path):
    """derive_sensor over every member: a closed day of hundreds of symbols gets one final
    each, and the cursor remembers all of them (not only the last 200)."""
    from ofi_cvd_harvest.storage.fs import Storage

    data = tmp_path / "data"
    universe = [f"S{i:03d}USDT" for i in range(260)]
    for sym in universe:
        (data / "raw" / "date=2024-07-19" / f"symbol={sym}" / "stream=agg_trade").mkdir(parents=True)
    t = dt.datetime(2024, 7, 20, 1, tzinfo=dt.timezone.utc).timestamp()
    reqs, cursor, notes = sensors.plan_derive(Storage(data), universe, t, None)
    assert sorted(r.partition_key for r in reqs) == [f"2024-07-19|{s}" for s in universe]
    assert all(r.trigger == "final" for r in reqs)
    assert notes == ["2024-07-20: no raw data for S000USDT, S001USDT, S002USDT, S003USDT, "
                     "S004USDT and 255 more"]                 # one note, not 260
    again, cursor, _ = sensors.plan_derive(Storage(data), universe, t + 60, cursor)
    assert again == []
    later, _, _ = sensors.plan_derive(Storage(data), universe, t + 3 * 86400, cursor)
    assert later == []                # days later: yesterday is another day, nothing re-final
