"""What a capture could not write, and the exit status that says so (docs/capture.md "Exit codes").

A capture whose data directory stayed full or read-only until the end still has rows in
memory when it stops; they are lost with the process. Exiting 0 then would tell a script
(and Dagster) that all is well, so such a run ends with :data:`EXIT_UNWRITTEN` and a line
giving the rows per table and their receive-time range. Trades among them are still owed in
the checkpoint (``capture/checkpoint.py``) and healed through REST on the next start; book and
ops rows cannot be fetched again.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow.compute as pc

EXIT_OK = 0
EXIT_FATAL = 1        # the capture stopped itself (e.g. error budget exceeded)
EXIT_SETTINGS = 2     # bad settings / a missing component
EXIT_SHARD_HELD = 3   # another process holds the shard's lease (capture/lease/)
EXIT_UNWRITTEN = 4    # ended with rows it could not write (disk full, read-only data dir)
EXIT_LEASE_LOST = 5   # lost the shard's lease while capturing: stopped writing (fencing)


def unwritten_by_table(batches: Iterable) -> dict[str, dict[str, int]]:
    """``{table: {"rows", "from_recv_ms", "to_recv_ms"}}`` over the batches still unwritten."""
    out: dict[str, dict[str, int]] = {}
    for b in batches:
        if not b.rows:
            continue
        lo, hi = (int(x.as_py()) for x in pc.min_max(b.table.column("recv_ts_ms")).values())
        d = out.setdefault(b.stream, {"rows": 0, "from_recv_ms": lo, "to_recv_ms": hi})
        d["rows"] += b.rows
        d["from_recv_ms"] = min(d["from_recv_ms"], lo)
        d["to_recv_ms"] = max(d["to_recv_ms"], hi)
    return dict(sorted(out.items()))


def unwritten_message(by_table: dict[str, dict[str, int]]) -> str | None:
    """One line for the terminal, the run log and Dagster; None when everything was written."""
    if not by_table:
        return None
    total = sum(d["rows"] for d in by_table.values())
    parts = ", ".join(f"{t}={d['rows']}" for t, d in by_table.items())
    owed = (" (trades are owed in the checkpoint and healed on the next start)"
            if "agg_trade" in by_table else "")
    return f"{total} rows could not be written: {parts}{owed}"
