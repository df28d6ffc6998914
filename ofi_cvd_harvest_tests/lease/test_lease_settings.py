"""Lease settings and flags: refused with one line naming them (exit 2) before anything runs."""

from __future__ import annotations

import pytest

from ofi_cvd_harvest.cli import main
from ofi_cvd_harvest.settings import SettingsError, load_settings


def _run(tmp_path, *flags: str) -> int:
    return main(["capture", "--run-seconds", "1", "--data-dir", str(tmp_path / "d"),
                 "--artifacts-dir", str(tmp_path / "a"), "--ws-base-url", "ws://127.0.0.1:9",
                 "--rest-base-url", "http://127.0.0.1:9", "--prometheus-port", "0", *flags])


@pytest.mark.parametrize("flags, said", [
    (("--lease-url", "s3://bucket/p"), "needs a shard"),
    (("--shard", "X", "--lease-url", "postgresql://h/db"), "postgresql+psycopg2://"),
    (("--shard", "X", "--lease-url", "redis://h"), "--lease-url"),
    (("--shard", "../etc"), "--shard"),
    (("--shard", "a" * 65), "--shard"),
])
def test_bad_lease_flags_exit_2_naming_them(tmp_path, capsys, flags, said):
    assert _run(tmp_path, *flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err
    assert not (tmp_path / "d").exists()          # nothing was captured or written


def test_environment_and_relation():
    s = load_settings(env={"CAPTURE_SHARD": "s-01", "CAPTURE_LEASE_URL": "s3://b/lake",
                           "CAPTURE_LEASE_TTL_SEC": "60", "CAPTURE_LEASE_RENEW_SEC": "20"})
    assert (s.shard, s.lease_url, s.lease_ttl_sec, s.lease_renew_sec) == ("s-01", "s3://b/lake",
                                                                          60.0, 20.0)
    assert load_settings(env={}).shard == "" and load_settings(env={}).lease_url == ""
    with pytest.raises(SettingsError, match="capture.lease_renew_sec"):
        load_settings(env={"CAPTURE_LEASE_TTL_SEC": "30", "CAPTURE_LEASE_RENEW_SEC": "11"})


def test_unreachable_lease_store_exits_1_in_one_line(tmp_path, capsys):
    from ..procs import free_port

    url = f"postgresql+psycopg2://u:pw@127.0.0.1:{free_port()}/db"
    assert _run(tmp_path, "--shard", "X", "--lease-url", url) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot take the lease" in err, err
    assert "pw" not in err and "u:***@" in err
    assert not (tmp_path / "d").exists()
