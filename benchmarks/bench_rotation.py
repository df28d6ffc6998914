"""Benchmark (issue 15): the CPU of one rotation at 300 symbols, in process, no sockets.

60 s of the universe replay block (``universe_harness.pregen_block``) go through the real
message handler, with a hand-over every simulated second (``_build_stage_io``: build, segments,
staging); then the minute's rotation (``_build_rotate_io``: gather, 600 Parquet files with
fsyncs, checkpoint) is timed. For a before/after, run it again with the other checkout first on
``PYTHONPATH``; ``PROF=1`` adds a cProfile of the rotation.

    .venv/bin/python benchmarks/bench_rotation.py
    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/bench_rotation.py
"""

import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universe_harness import pregen_block, symbols_for  # noqa: E402

from ofi_cvd_harvest.capture.runner import Capture  # noqa: E402
from ofi_cvd_harvest.settings import load_settings  # noqa: E402


def main(n: int = 300) -> None:
    blk = pregen_block(n, 60.0)
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
    per_s = len(blk) // 60
    stage_cpu = 0.0
    for sec in range(60):
        for i in range(sec * per_s, (sec + 1) * per_s):
            st, r = blk[i]
            cb[st](b'{"stream":"' + st.encode() + b'","data":' + r + b'}',
                   1_750_000_000_000 + i // 5, 1)
        c0 = time.process_time()
        cap.store._build_stage_io(cap.buffers.swap())
        stage_cpu += time.process_time() - c0
    sw, snaps = cap.store.pre_rotate()
    c0, w0 = os.times(), time.perf_counter()
    if os.environ.get("PROF"):
        prof = cProfile.Profile()
        prof.runcall(cap.store._build_rotate_io, sw, snaps)
    else:
        cap.store._build_rotate_io(sw, snaps)
    c1 = os.times()
    print(f"{n} symbols, 60 s: hand-over {stage_cpu * 1e3 / 60:.1f} ms CPU each; rotation: user "
          f"{c1.user - c0.user:.2f} s, sys {c1.system - c0.system:.2f} s, wall "
          f"{time.perf_counter() - w0:.2f} s for {cap.store.writer.files_written} files")
    if os.environ.get("PROF"):
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
