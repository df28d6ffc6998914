"""The orchestration's settings, once environment variables read ad hoc (CAPTURE_SYMBOL_GROUPS,
OFI_CVD_CAPTURE_AUTOSTART, PARTITIONS_START_DATE, EXTRA_PARTITION_SYMBOLS) and the shard
settings: parsed from the environment and the file, hostile values refused in one line."""

from __future__ import annotations

import pytest

from ofi_cvd_harvest.settings import SettingsError, load_settings


def env_settings(**env):
    return load_settings(env={k: v for k, v in env.items()})


def test_defaults():
    s = env_settings()
    assert (s.capture_universe, s.symbol_groups, s.capture_shards, s.host_queues, s.shard,
            s.capture_autostart, s.partitions_start_date, s.extra_partition_symbols) == (
        "symbols", (), 1, (), "", False, "2024-07-01", ())


def test_from_the_environment():
    s = env_settings(CAPTURE_SYMBOL_GROUPS=" btcusdt, ETHUSDT ; ;SOLUSDT;", CAPTURE_UNIVERSE="shards",
                     CAPTURE_SHARDS="4", CAPTURE_HOST_QUEUES="host-a, host_b.1",
                     CAPTURE_SHARD="shard-03", OFI_CVD_CAPTURE_AUTOSTART="Yes",
                     PARTITIONS_START_DATE="2025-01-31", EXTRA_PARTITION_SYMBOLS="solusdt,XRPUSDT")
    assert s.symbol_groups == (("BTCUSDT", "ETHUSDT"), ("SOLUSDT",))
    assert (s.capture_universe, s.capture_shards, s.host_queues, s.shard) == (
        "shards", 4, ("host-a", "host_b.1"), "shard-03")
    assert s.capture_autostart is True and s.partitions_start_date == "2025-01-31"
    assert s.extra_partition_symbols == ("SOLUSDT", "XRPUSDT")
    assert env_settings(OFI_CVD_CAPTURE_AUTOSTART="0").capture_autostart is False


def test_from_the_file(tmp_path):
    p = tmp_path / "system.yaml"
    p.write_text("data_harvest:\n  capture:\n    symbol_groups: [[btcusdt, ETHUSDT], SOLUSDT]\n"
                 "    host_queues: [a, b]\n    autostart: true\n"
                 "  partitions:\n    start_date: 2025-03-01\n    extra_symbols: []\n")
    s = load_settings(p, env={})
    assert s.symbol_groups == (("BTCUSDT", "ETHUSDT"), ("SOLUSDT",))
    assert (s.host_queues, s.capture_autostart, s.partitions_start_date) == (("a", "b"), True,
                                                                            "2025-03-01")


@pytest.mark.parametrize("var,value,why", [
    ("CAPTURE_SYMBOL_GROUPS", "BTCUSDT;ETHUSDT,BTCUSDT", "BTCUSDT in two groups"),
    ("CAPTURE_SYMBOL_GROUPS", "BTC/USDT", "symbol 'BTC/USDT'"),
    ("CAPTURE_UNIVERSE", "everything", "one of symbols, shards"),
    ("CAPTURE_SHARDS", "0", "1..1000"),
    ("CAPTURE_SHARDS", "2.5", "not a whole number"),
    ("CAPTURE_HOST_QUEUES", "a,a", "duplicate name"),
    ("CAPTURE_HOST_QUEUES", "a b", "names"),
    ("CAPTURE_SHARD", "../x", "letters, digits"),
    ("CAPTURE_SHARD", "x" * 64, "up to 63"),
    ("OFI_CVD_CAPTURE_AUTOSTART", "maybe", "true or false"),
    ("PARTITIONS_START_DATE", "2025-02-30", "no such day"),
    ("PARTITIONS_START_DATE", "yesterday", "YYYY-MM-DD"),
    ("EXTRA_PARTITION_SYMBOLS", "SOL-USDT", "symbol 'SOL-USDT'"),
])
def test_hostile_values_one_line(var, value, why):
    with pytest.raises(SettingsError) as err:
        env_settings(**{var: value})
    msg = str(err.value)
    assert msg.startswith(f"setting {var} (") and why in msg and "\n" not in msg


def test_capture_groups_follow_the_setting():
    from ofi_cvd_harvest.orchestration.capture_groups import capture_groups
    assert capture_groups(env_settings()) == [("BTCUSDT", "ETHUSDT")]
    assert capture_groups(env_settings(CAPTURE_SYMBOL_GROUPS="ETHUSDT;BTCUSDT")) == [
        ("ETHUSDT",), ("BTCUSDT",)]
