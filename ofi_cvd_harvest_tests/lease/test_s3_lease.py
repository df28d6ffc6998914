"""The object-store lease against a real moto_server: conditional create, the second refused
with the holder named, takeover only after expiry (store clock), a renewal refused once another
process took over, and a capture that cannot renew stops before its lease could be taken."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest.capture.lease import LeaseLost, ShardHeld, open_lease
from ofi_cvd_harvest.capture.lease.s3 import S3Lease, lease_key
from ofi_cvd_harvest.capture.outcome import EXIT_LEASE_LOST
from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.storage.objectstore import ObjectStore

from ..capture.rawcheck import capture_settings, read


def test_create_then_second_refused_naming_the_holder(lake):
    url, _ = lake
    a = open_lease(url, "X", 30, 10)
    assert isinstance(a, S3Lease) and a.acquire() == "new"
    assert a.key == "lake/leases/X.json" == lease_key(url, "X")
    with pytest.raises(ShardHeld) as err:
        S3Lease(url, "X", 30, 10).acquire()
    assert a.holder in str(err.value) and "expires in" in str(err.value)
    a.keep()                                   # renewals keep it
    a.keep()
    assert S3Lease(url, "Y", 30, 10).acquire() == "new"   # another shard is free
    a.release()                                # released: taken at once, no TTL to wait
    c = S3Lease(url, "X", 30, 10)
    assert c.acquire().startswith("released by")


def test_expired_lease_is_taken_over_and_the_old_holder_is_refused(lake):
    url, _ = lake
    a = S3Lease(url, "E", 3, 1)
    a.acquire()
    b = S3Lease(url, "E", 3, 1)
    with pytest.raises(ShardHeld):
        b.acquire()                            # not yet expired
    deadline = time.monotonic() + 15
    while True:                                # the holder stopped renewing (died)
        try:
            how = b.acquire()
            break
        except ShardHeld:
            assert time.monotonic() < deadline, "an expired lease was never taken over"
            time.sleep(0.5)
    assert how.startswith("taken over from") and a.holder in how
    with pytest.raises(LeaseLost, match="refused") as err:
        a.keep()                               # the old holder comes back: refused
    assert b.holder in str(err.value)
    b.keep()
    # two takers of one stale ETag: the conditional replace lets exactly one win
    stale = b.current()[1]
    b.keep()
    t1, t2 = S3Lease(url, "E", 3, 1), S3Lease(url, "E", 3, 1)
    with pytest.raises(Exception) as err2:
        t1._put(IfMatch=stale)
    assert "PreconditionFailed" in str(err2.value) or "412" in str(err2.value)
    cur = b.current()
    t1._put(IfMatch=cur[1])
    with pytest.raises(Exception) as err3:
        t2._put(IfMatch=cur[1])
    assert "PreconditionFailed" in str(err3.value) or "412" in str(err3.value)


def test_renewal_whose_answer_was_lost_is_still_ours(lake):
    """A renewal that reached the store but whose answer did not come back leaves the holder
    with a stale ETag: the next renewal is refused, yet the object is ours (our nonce)."""
    url, _ = lake
    a = S3Lease(url, "N", 30, 10)
    a.acquire()
    stale = a.etag
    a.keep()                                   # lands; pretend its answer was lost
    a.etag = stale
    a.keep()                                   # not a lost lease
    b = S3Lease(url, "N", 30, 10)
    with pytest.raises(ShardHeld):
        b.acquire()


def test_hostile_lease_object_is_a_hold_until_it_expires(lake):
    url, _ = lake
    bucket = url.split("/")[2]
    ObjectStore(bucket).put("lake/leases/H.json", b"\xff not json")
    with pytest.raises(ShardHeld, match="unreadable lease object"):
        S3Lease(url, "H", 30, 10).acquire()


def test_capture_that_cannot_renew_stops_before_the_lease_expires(simulator, lake, tmp_path):
    """The store goes away mid-capture: renewals fail, and the capture stops (fencing) with its
    files finalised before anyone could take the lease (last renewal + TTL, store clock)."""
    url, proxy = lake
    ttl, renew = 7.5, 2.5
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, shard="F",
                         lease_url=url, lease_ttl_sec=ttl, lease_renew_sec=renew,
                         parquet_rotate_sec=1.0)
    bucket = url.split("/")[2]
    store = ObjectStore(bucket)                 # straight to moto later: the proxy goes down
    import threading

    def cut() -> None:
        time.sleep(3.0)
        proxy.down()
    threading.Thread(target=cut, daemon=True).start()
    with pytest.raises(LeaseLost) as err:      # not the run time: that would return normally
        run_capture_sync(s, run_seconds=60)
    assert "lease lost" in str(err.value) and "fencing deadline" in str(err.value)
    proxy.up()
    head = store.client.head_object(Bucket=bucket, Key="lake/leases/F.json")
    renewed = head["LastModified"].timestamp()     # the store's clock, whole seconds
    # a taker may take over once Date - Last-Modified > ttl + 1 (both whole seconds): not
    # before renewed + ttl + 2; the files are final a second before that at the latest
    written = [p.stat().st_mtime for p in (tmp_path / "data" / "raw").rglob("*.parquet")]
    assert written and max(written) < renewed + ttl + 1, (max(written) - renewed)
    ops = read(tmp_path / "data", "ops")
    kinds = ops["event_type"].to_list()
    assert "lease_acquired" in kinds and "lease_lost" in kinds and "lease_renew_failed" in kinds
    assert EXIT_LEASE_LOST == 5
    for p in (tmp_path / "data" / "raw").rglob("*.parquet"):
        pq.read_metadata(p)                     # every file finalised whole
