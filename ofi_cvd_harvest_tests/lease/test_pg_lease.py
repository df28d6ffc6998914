"""The PostgreSQL lease against a real server: one holder per shard, the holder named to the
refused, a terminated session is a lost lease, and a freed lock is taken at once."""

from __future__ import annotations

import os

import pytest

from ofi_cvd_harvest.capture.lease import LeaseLost, ShardHeld, open_lease
from ofi_cvd_harvest.capture.lease import redact
from ofi_cvd_harvest.capture.lease.pg import PgLease, lock_key


def test_lock_key_is_stable_and_per_shard():
    assert lock_key("X") == lock_key("X") != lock_key("Y")
    assert lock_key("shard-a") == -4885478908987727896   # the same on every host, forever
    assert -(1 << 63) <= lock_key("z" * 64) < (1 << 63)


def test_one_holder_the_second_is_told_who(lease_db, pg_server):
    a = open_lease(lease_db, "X", 30, 10)
    assert isinstance(a, PgLease) and a.acquire() == "new"
    try:
        b = PgLease(lease_db, "X")
        with pytest.raises(ShardHeld) as err:
            b.acquire()
        msg = str(err.value)
        assert f"pid={os.getpid()} shard=X" in msg and "backend pid" in msg, msg
        assert "\n" not in msg
        other = PgLease(lease_db, "Y")          # another shard is free
        assert other.acquire() == "new"
        other.release()
        a.keep()                                # still ours
    finally:
        a.release()
    c = PgLease(lease_db, "X")                  # released: the next one gets it at once
    assert c.acquire() == "new"
    c.release()


def test_terminated_session_is_a_lost_lease_and_frees_the_lock(lease_db, pg_server):
    a = PgLease(lease_db, "T")
    a.acquire()
    pid = a.conn.get_backend_pid()
    pg_server.sql(f"select pg_terminate_backend({pid})", db=lease_db.rsplit("/", 1)[1])
    with pytest.raises(LeaseLost, match="session ended"):
        a.keep()
    b = PgLease(lease_db, "T")
    assert b.acquire() == "new"
    b.release()
    a.release()                                 # releasing a dead lease is harmless


def test_refused_server_is_not_a_hold(pg_server):
    url = pg_server.url("no_such_database_here")
    with pytest.raises(Exception) as err:
        PgLease(url, "X").acquire()
    assert not isinstance(err.value, ShardHeld)


def test_password_is_not_shown():
    assert redact("postgresql+psycopg2://u:secret@h:5/db") == "postgresql+psycopg2://u:***@h:5/db"
    assert redact("postgresql+psycopg2://h/db") == "postgresql+psycopg2://h/db"


def test_capture_whose_database_goes_silent_fences_itself(simulator, pg_server, lease_db,
                                                          tmp_path, monkeypatch):
    """The server stops answering (a network partition: the proxy holds every byte): checks
    time out and the capture stops at its fencing deadline, before the server would drop the
    session after its keepalives. The margin is shortened here from 10 s to the test's 4 s."""
    import threading
    import time

    from ofi_cvd_harvest.capture.runner import run_capture_sync
    from ofi_cvd_harvest.capture.lease import pg

    from ..capture.rawcheck import capture_settings, read
    from ..lake.s3env import TcpProxy

    monkeypatch.setattr(pg, "FENCE_MARGIN_SEC", pg.SERVER_DROP_SEC - 4.0)
    proxy = TcpProxy(pg_server.port)
    url = lease_db.replace(f":{pg_server.port}/", f":{proxy.port}/")
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, shard="S",
                         lease_url=url, parquet_rotate_sec=1.0)

    def stall() -> None:
        time.sleep(2.5)
        proxy.stall()
    threading.Thread(target=stall, daemon=True).start()
    try:
        with pytest.raises(LeaseLost, match="fencing deadline") as err:
            run_capture_sync(s, run_seconds=60)
    finally:
        proxy.close()
    assert "no answer within" in str(err.value)
    kinds = read(tmp_path / "data", "ops")["event_type"].to_list()
    assert "lease_renew_failed" in kinds and "lease_lost" in kinds
