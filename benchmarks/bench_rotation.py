"""Benchmark (issue 15): the CPU of a rotation at 300 symbols, in process, no sockets, beside
the floor of the writes themselves.

120 s of the universe replay block (``universe_harness.pregen_block``) go through the real
message handler, with a hand-over every simulated second (``_build_stage_io``: build, segments,
staging); each minute's rotation (``_build_rotate_io``: gather, 600 Parquet files with fsyncs,
checkpoint) is timed. The first rotation of a date also creates its 900 partition directories;
the second is the steady state. Then the floor: the second rotation's 600 files are read back
as single-chunk tables and written once more the way SPEC §3 asks (a temporary name, zstd
Parquet with the product's options, fsync, rename, fsync of the directory) into directories
that exist, with no other work: what any capture writing these rows must spend, whatever its
language; and with one row each, what the files cost whatever they hold. For a before/after, run it again with the other checkout first on ``PYTHONPATH``;
``PROF=1`` adds a cProfile of the steady rotation.

    .venv/bin/python benchmarks/bench_rotation.py
    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/bench_rotation.py
"""

import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universe_harness import pregen_block, symbols_for  # noqa: E402

from ofi_cvd_harvest.capture.runner import Capture  # noqa: E402
from ofi_cvd_harvest.settings import load_settings  # noqa: E402
from ofi_cvd_harvest.storage.fs import parquet_options, fsync_path  # noqa: E402


def cpu() -> tuple[float, float]:
    c = os.times()
    return c.user, c.system


# the cheapest zstd Parquet there is: what a writer free to drop the product's choices spends
CHEAPEST = dict(compression="zstd", compression_level=1, use_dictionary=False,
                write_statistics=False, write_page_checksum=False)


def floor_writes(files: list[str], out: Path, cheapest: bool,
                 rows: int | None = None) -> tuple[float, float, int]:
    """(user, sys) CPU seconds to write ``files``' tables again as SPEC §3 files, nothing else:
    with the product's Parquet options, or with ``CHEAPEST``; ``rows``: only the first rows of
    each (one row: what a file costs whatever it holds)."""
    tables = [(out / str(i), pq.read_table(f).combine_chunks().slice(0, rows))
              for i, f in enumerate(files)]
    for d, _ in tables:
        d.mkdir(parents=True)
    u0, s0 = cpu()
    for d, t in tables:
        tmp, final = d / "part.parquet.tmp", d / "part.parquet"
        with pa.OSFile(str(tmp), "wb") as sink:     # Arrow's own file: no Python per write
            pq.write_table(t, sink, **(CHEAPEST if cheapest else parquet_options(t.schema)))
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(d)
    u1, s1 = cpu()
    return u1 - u0, s1 - s0, sum(t.num_rows for _, t in tables)


def main(n: int = 300) -> None:
    blk = pregen_block(n, 120.0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_rotation_"))
    s = load_settings(env={}, symbols=tuple(symbols_for(n)), ws_base_url="ws://127.0.0.1:1",
                      rest_base_url="http://127.0.0.1:1", data_dir=tmp / "data",
                      artifacts_dir=tmp / "art", prometheus_port=0, log_level="WARNING")
    cap = Capture(s)
    cap.live_cvd = None
    cb = {}
    for f in cap._make_feeds():
        for st in f.url.split("streams=")[1].split("/"):
            cb[st] = f.on_message
    per_s = len(blk) // 120
    for minute, label in enumerate(("first (creates the date's directories)", "steady")):
        stage_cpu = 0.0
        for sec in range(minute * 60, minute * 60 + 60):
            for i in range(sec * per_s, (sec + 1) * per_s):
                st, r = blk[i]
                cb[st](b'{"stream":"' + st.encode() + b'","data":' + r + b'}',
                       1_750_000_000_000 + i // 5, 1)
            c0 = time.process_time()
            cap.store._build_stage_io(cap.buffers.swap())
            stage_cpu += time.process_time() - c0
        sw, snaps = cap.store.pre_rotate()
        written = cap.store.writer.files_written
        (u0, s0), w0 = cpu(), time.perf_counter()
        if os.environ.get("PROF") and minute == 1:
            prof = cProfile.Profile()
            prof.runcall(cap.store._build_rotate_io, sw, snaps)
        else:
            cap.store._build_rotate_io(sw, snaps)
        u1, s1 = cpu()
        files = cap.store.writer.files_written - written
        print(f"{n} symbols, minute {minute + 1}: hand-over {stage_cpu * 1e3 / 60:.1f} ms CPU "
              f"each; {label} rotation: user {u1 - u0:.2f} s, sys {s1 - s0:.2f} s, wall "
              f"{time.perf_counter() - w0:.2f} s for {files} files")
    for i, (cheapest, first) in enumerate(((False, None), (True, None), (False, 1))):
        fu, fs_, rows = floor_writes(list(cap.store.writer.files)[-files:], tmp / f"floor{i}",
                                     cheapest, first)
        how = ("one row each, the product options" if first else
               "the cheapest zstd options" if cheapest else "the product options")
        print(f"floor: the same {files} files ({rows:,} rows) written again, nothing else, "
              f"{how}: user {fu:.2f} s, sys {fs_:.2f} s = {100 * (fu + fs_) / 60:.1f} % of a "
              f"core at one rotation a minute")
    if os.environ.get("PROF"):
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
