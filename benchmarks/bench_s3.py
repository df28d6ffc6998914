"""Benchmark: the lake on local disk vs on an S3-compatible store (moto_server), in one run.

Synthesises the raw files of one symbol — the 6 h 5 min warm-up the derivation reads plus
``--hours`` of the day, one file per minute per stream like the capture — then measures, for
both lakes:

* capture side: writing those files as the capture's writer does (local: atomic rename into
  the lake; s3: atomic rename into the local spool, then one ``If-None-Match: *`` PUT per file
  by the publisher until the spool is empty) — files/s and MB/s;
* derive side: the gate on the partition (derive, stage, checks, publish; ``publish_on_fail``
  so both publish) — seconds per partition, first (every raw file verified in full) and again
  (verification remembered).

moto_server is a single-threaded Python server on loopback: its figures are a floor for a
real store, not an estimate of one (docs/deploy.md, "Object storage").

    .venv/bin/python benchmarks/bench_s3.py [--hours 1] [--trades-per-day 500000]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DATE = "2025-01-15"
SYMBOL = "BTCUSDT"
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REQUEST_RE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|HEAD|POST|DELETE) ')


def requests_so_far(log: str) -> collections.Counter:
    """Requests by method in moto_server's access log (its colour codes skipped)."""
    return collections.Counter(REQUEST_RE.findall(Path(log).read_text(errors="replace")))


def start_moto(log: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    out = open(log, "w")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                            stderr=out)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def synthesise(root: str, hours: float, per_day: int) -> None:
    from ofi_cvd_harvest.signals import synthetic as sy
    from ofi_cvd_harvest.storage.fs import Storage
    from ofi_cvd_harvest.storage.layout import day_bounds_ms

    st = Storage(root)
    d0, _ = day_bounds_ms(DATE)
    t, end_all = d0 - (6 * 3600 + 300) * 1000, d0 + int(hours * 3_600_000)
    next_id = 1
    while t < end_all:
        end = min(t + 3_600_000, end_all)
        n = int(per_day * (end - t) / 86_400_000)
        sy.write_raw(st, SYMBOL, "agg_trade", sy.synth_trades(t, end, n, seed=t // 3_600_000,
                                                              first_id=next_id))
        sy.write_raw(st, SYMBOL, "book", sy.synth_book(t, end, seed=t // 3_600_000,
                                                       first_id=10 * next_id))
        next_id += n
        t = end


def capture_side(src: str, local_dst: str, url: str, spool: str) -> dict:
    """Write every raw file as the capture would, into each lake; returns timings."""
    import pyarrow.parquet as pq

    from ofi_cvd_harvest.capture.publisher import Publisher, SpoolStorage
    from ofi_cvd_harvest.storage.fs import Storage

    files = sorted(Path(src, "raw").glob("date=*/symbol=*/stream=*/*.parquet"))
    tables = [(f.relative_to(src).as_posix(), pq.read_table(f)) for f in files]
    size = sum(f.stat().st_size for f in files)
    local = Storage(local_dst)
    t0 = time.perf_counter()
    for rel, tbl in tables:
        local.write_parquet(rel, tbl)
    t_local = time.perf_counter() - t0
    pub = Publisher(url, spool, 10**12)
    spool_st = SpoolStorage(spool, pub)
    t0 = time.perf_counter()
    pub.start()
    for rel, tbl in tables:
        pub.ready(spool_st.write_parquet(rel, tbl))
    left = pub.stop(3600)
    t_s3 = time.perf_counter() - t0
    assert left == 0 and pub.published == len(tables), (left, pub.published)
    return {"files": len(tables), "mb": size / 1e6, "local_s": t_local, "s3_s": t_s3}


def derive_side(root) -> float:
    from ofi_cvd_harvest.gate.run import gate_partition
    from ofi_cvd_harvest.gate.verdict import Acceptance
    from ofi_cvd_harvest.settings import Settings
    from ofi_cvd_harvest.storage.fs import Storage

    t0 = time.perf_counter()
    out = gate_partition(Storage(root), Settings(), DATE, SYMBOL, run="bench_s3",
                         accept=Acceptance("bench", "bench_s3"))
    assert out.published, out.summary()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0, help="hours of the day after the warm-up")
    ap.add_argument("--trades-per-day", type=int, default=500_000)
    args = ap.parse_args()
    os.environ.update(ENV)
    work = tempfile.mkdtemp(prefix="bench_s3_")
    log = f"{work}/moto.log"
    proc, endpoint = start_moto(log)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        url = "s3://bench/lake"
        t0 = time.perf_counter()
        synthesise(f"{work}/src", args.hours, args.trades_per_day)
        print(f"synthesised {args.hours + 6.08:.1f} h of raw files in {time.perf_counter() - t0:.1f} s")
        before = requests_so_far(log)
        cap = capture_side(f"{work}/src", f"{work}/local", url, f"{work}/spool")
        time.sleep(1)
        cap_req, before = requests_so_far(log) - before, requests_so_far(log)
        print(f"capture: {cap['files']} files, {cap['mb']:.1f} MB: "
              f"local {cap['files'] / cap['local_s']:.0f} files/s ({cap['mb'] / cap['local_s']:.1f} MB/s), "
              f"s3 (spool + PUT) {cap['files'] / cap['s3_s']:.0f} files/s "
              f"({cap['mb'] / cap['s3_s']:.1f} MB/s); s3/local time ratio "
              f"{cap['s3_s'] / cap['local_s']:.2f}")
        d_local = derive_side(f"{work}/local")
        d_s3 = derive_side(url)
        time.sleep(1)
        d_req, before = requests_so_far(log) - before, requests_so_far(log)
        print(f"derive+gate {DATE} {SYMBOL}: local {d_local:.1f} s, s3 {d_s3:.1f} s; "
              f"s3/local ratio {d_s3 / d_local:.2f}")
        # a refresh: every raw file is verified already (storage/verify.py manifest)
        r_local, r_s3 = derive_side(f"{work}/local"), derive_side(url)
        time.sleep(1)
        r_req = requests_so_far(log) - before
        print(f"again (files verified before): local {r_local:.1f} s, s3 {r_s3:.1f} s; "
              f"s3/local ratio {r_s3 / r_local:.2f}")
        print(f"requests: publish {dict(cap_req)}; first derive {dict(d_req)}; "
              f"refresh {dict(r_req)} (docs/deploy.md, \"Costs\")")
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
