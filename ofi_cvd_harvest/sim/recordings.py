"""Parsers of market recordings into one timeline of :class:`Recorded` messages.

The replay source (``replay.py``) and the book-sync tests need the same thing from three
different on-disk formats: the messages in the order they arrived, with their payloads in the
form the simulator serves (docs/simulator.md), plus the REST depth snapshots taken during the
recording. Keeping the formats here keeps the replay logic format-free.

Formats (see ``realdata/README.md``):

* cryptofeed ``BINANCE_FUTURES.ws.*`` -- line 1 the connect URL, then
  ``<unix seconds>: <combined-stream JSON>``; REST snapshots in the sibling
  ``BINANCE_FUTURES.http.*`` as ``<url> -> <unix seconds>: <JSON>``.
* hftbacktest gzip lines ``<recv ns> <combined-stream JSON>``; a line holding a bare REST depth
  snapshot (``{"lastUpdateId",…}``) is the symbol's snapshot. ``@trade`` (raw trades) are
  normalised to ``aggTrade`` payloads with ``a = f = l = t`` (each raw trade its own aggregate);
  ``@depth@0ms`` is the diff stream (same payload as ``@depth@100ms``).
* this project's raw partitions (``data/raw/date=…/symbol=…/stream=…/*.parquet``): trades
  become ``aggTrade`` payloads (unique ids, in id order); ``book`` rows are top-N snapshots,
  so they are turned into a diff stream (levels changed, added, or gone from the top N) with
  the rows' own ``U/u/pu``, plus a synthetic snapshot at the first row and after every chain
  break, so a diff-depth book rebuilt from them shows exactly the recorded rows.

``kind`` is one of ``aggTrade``, ``depth``, ``bookTicker``, ``snapshot`` or ``other``
(e.g. cryptofeed's kline stream, kept with its recorded stream name).
"""

from __future__ import annotations

import glob
import gzip
import heapq
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from ..protocol.vocabulary import (AGG_TRADE, BOOK_TICKER, DIFF, TRADE, agg_trade_stream,
                                   diff_depth_stream, parse_stream)

KIND_TRADE = "aggTrade"
KIND_DEPTH = "depth"
KIND_TICKER = "bookTicker"
KIND_SNAPSHOT = "snapshot"
KIND_OTHER = "other"


class RecordingError(ValueError):
    """The path is not a recording in a known format (message names the path and why)."""


@dataclass(slots=True)
class Recorded:
    """One recorded message. ``recv_ms``: the recorder's receive time (ms, its own clock);
    ``data``: the payload as served (a REST depth body for ``snapshot``); ``raw``: ``data``'s
    exact recorded JSON bytes when unchanged (saves re-encoding); ``stream``: as recorded."""
    recv_ms: float
    kind: str
    symbol: str
    data: dict[str, Any]
    raw: bytes | None = None
    stream: str = ""


_STREAM_KIND = {AGG_TRADE: KIND_TRADE, TRADE: KIND_TRADE, BOOK_TICKER: KIND_TICKER,
                DIFF: KIND_DEPTH}


def stream_kind(stream: str) -> str:
    """``btcusdt@depth@0ms`` -> ``depth`` (diff, any speed); partial depth (``@depth10``) ->
    ``other``."""
    return _STREAM_KIND.get(parse_stream(stream).kind, KIND_OTHER)


def trade_to_agg(d: dict[str, Any]) -> dict[str, Any]:
    """Raw ``trade`` payload -> ``aggTrade`` payload with ``a = f = l = t``."""
    t = d["t"]
    return {"e": "aggTrade", "E": d["E"], "s": d["s"], "a": t, "p": d["p"], "q": d["q"],
            "f": t, "l": t, "T": d["T"], "m": d["m"]}


def _data_raw(line: bytes) -> bytes | None:
    """The recorded bytes of ``data`` inside ``{"stream":…,"data":{…}}`` (no re-encoding)."""
    i = line.find(b'"data":')
    j = line.rfind(b"}")
    if i < 0 or j < 0:
        return None
    return line[i + 7:j]


def _envelope(recv_ms: float, line: bytes, obj: dict[str, Any]) -> Recorded:
    stream = obj["stream"]
    data = obj["data"]
    kind = stream_kind(stream)
    sym = data.get("s") or parse_stream(stream).symbol
    if kind == KIND_TRADE and data.get("e") == "trade":
        return Recorded(recv_ms, kind, sym, trade_to_agg(data), None, stream)
    return Recorded(recv_ms, kind, sym, data, _data_raw(line), stream)


# --------------------------------------------------------------------------- cryptofeed
_HTTP_SYMBOL = re.compile(r"[?&]symbol=([A-Za-z0-9]+)")


def read_cryptofeed_ws(path: str | Path) -> list[Recorded]:
    out: list[Recorded] = []
    with open(path, "rb") as fh:
        fh.readline()                      # the connect URL
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            ts, sep, body = line.partition(b": ")
            if not sep:
                raise RecordingError(f"{path}: line without '<ts>: ' prefix: {line[:60]!r}")
            obj = orjson.loads(body)
            if "stream" not in obj:
                continue
            out.append(_envelope(float(ts) * 1000.0, body, obj))
    return out


def read_cryptofeed_http(path: str | Path) -> list[Recorded]:
    """REST answers; only ``/fapi/v1/depth`` snapshots are kept (as ``snapshot``)."""
    out: list[Recorded] = []
    with open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            url, sep, rest = line.partition(b" -> ")
            if not sep or b"/depth" not in url:
                continue
            ts, _, body = rest.partition(b": ")
            m = _HTTP_SYMBOL.search(url.decode())
            if not m:
                continue
            out.append(Recorded(float(ts) * 1000.0, KIND_SNAPSHOT, m.group(1).upper(),
                                orjson.loads(body), body, "rest@depth"))
    return out


def read_cryptofeed(ws_path: str | Path) -> list[Recorded]:
    """The ws file plus its sibling ``.http.`` file (if any), merged by receive time."""
    ws_path = Path(ws_path)
    msgs = read_cryptofeed_ws(ws_path)
    http = sorted(ws_path.parent.glob(ws_path.name.split(".ws.")[0] + ".http.*"))
    snaps = [r for h in http for r in read_cryptofeed_http(h)]
    return merge([msgs, sorted(snaps, key=lambda r: r.recv_ms)])


# --------------------------------------------------------------------------- hftbacktest
def read_hftbacktest(path: str | Path) -> list[Recorded]:
    path = Path(path)
    file_sym = path.name.split("_")[0].upper()
    out: list[Recorded] = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            ts, sep, body = line.rstrip(b"\r\n").partition(b" ")
            if not sep:
                continue
            recv_ms = int(ts) / 1e6
            obj = orjson.loads(body)
            if "stream" in obj:
                out.append(_envelope(recv_ms, body, obj))
            elif "lastUpdateId" in obj:
                out.append(Recorded(recv_ms, KIND_SNAPSHOT, file_sym, obj, body, "rest@depth"))
    return out


# --------------------------------------------------------------------------- raw partitions
def _dec(x: float) -> str:
    """A float as a Binance-style decimal string (never exponent notation)."""
    s = repr(float(x))
    if "e" in s or "E" in s:
        s = format(x, ".12f").rstrip("0").rstrip(".")
    elif s.endswith(".0"):
        s = s[:-2]
    return s


def _located(paths: list[str]) -> tuple[list[str], object]:
    """(paths, filesystem) for ``ds.dataset``: ``s3://`` URLs become bucket/key paths."""
    if paths and "://" in paths[0]:
        import pyarrow.fs as pafs

        fs, _ = pafs.FileSystem.from_uri(paths[0])
        return [p.split("://", 1)[1] for p in paths], fs
    return paths, None


def read_raw_partitions(data_dir: str | Path) -> list[Recorded]:
    """Our own ``raw/`` partitions (``data_dir`` is the data root or its ``raw`` folder).
    Timeline keyed on the exchange event time (healed ``rest`` trades have late receive times)."""
    import pyarrow.dataset as ds

    from ..storage.objectstore import data_root

    root = data_root(data_dir)          # a directory, or an s3:// lake (docs/deploy.md)
    if (root / "raw").is_dir():
        root = root / "raw"
    trades, books = [], []
    for f in sorted(root.glob("date=*/symbol=*/stream=*/*.parquet")):
        stream = f.parent.name.split("=", 1)[1]
        if stream == "agg_trade":
            trades.append(str(f))
        elif stream == "book":
            books.append(str(f))
    if not trades and not books:
        raise RecordingError(f"{data_dir}: no raw agg_trade/book parquet partitions")
    out: list[Recorded] = []
    if trades:
        paths, fs = _located(trades)
        t = ds.dataset(paths, filesystem=fs, format="parquet").to_table().sort_by(
            [("symbol", "ascending"), ("agg_trade_id", "ascending"), ("recv_ts_ms", "ascending")])
        seen: set[tuple[str, int]] = set()
        for r in t.to_pylist():
            key = (r["symbol"], r["agg_trade_id"])
            if key in seen:
                continue
            seen.add(key)
            e = r["event_ts_ms"] if r["source"] == "ws" else r["trade_ts_ms"]
            data = {"e": "aggTrade", "E": e, "s": r["symbol"], "a": r["agg_trade_id"],
                    "p": _dec(r["price"]), "q": _dec(r["qty"]), "f": r["first_trade_id"],
                    "l": r["last_trade_id"], "T": r["trade_ts_ms"], "m": r["is_buyer_maker"]}
            out.append(Recorded(float(e), KIND_TRADE, r["symbol"], data, None,
                                agg_trade_stream(r["symbol"])))
    if books:
        paths, fs = _located(books)
        b = ds.dataset(paths, filesystem=fs, format="parquet").to_table().sort_by(
            [("symbol", "ascending"), ("event_ts_ms", "ascending"),
             ("final_update_id", "ascending")])
        prev_sym = None
        prev: tuple[dict[float, float], dict[float, float]] = ({}, {})
        last_u = None
        for r in b.to_pylist():
            sym = r["symbol"]
            if sym != prev_sym:
                prev_sym, prev, last_u = sym, ({}, {}), None
            if last_u is not None and r["final_update_id"] <= last_u:
                continue                       # duplicate row (e.g. overlapping connections)
            bids = dict(zip(r["bid_px"], r["bid_qty"]))
            asks = dict(zip(r["ask_px"], r["ask_qty"]))
            data = {"e": "depthUpdate", "E": r["event_ts_ms"], "T": r["transact_ts_ms"],
                    "s": sym, "U": r["first_update_id"], "u": r["final_update_id"],
                    "pu": r["prev_final_update_id"],
                    "b": _level_diff(prev[0], bids), "a": _level_diff(prev[1], asks)}
            t_ms = float(r["event_ts_ms"])
            out.append(Recorded(t_ms, KIND_DEPTH, sym, data, None, diff_depth_stream(sym)))
            if last_u is None or r["gap"] or r["prev_final_update_id"] != last_u:
                snap = {"lastUpdateId": r["final_update_id"], "E": r["event_ts_ms"],
                        "T": r["transact_ts_ms"],
                        "bids": [[_dec(p), _dec(q)] for p, q in zip(r["bid_px"], r["bid_qty"])],
                        "asks": [[_dec(p), _dec(q)] for p, q in zip(r["ask_px"], r["ask_qty"])]}
                out.append(Recorded(t_ms, KIND_SNAPSHOT, sym, snap, None, "rest@depth"))
            prev, last_u = (bids, asks), r["final_update_id"]
    out.sort(key=lambda r: r.recv_ms)      # stable: per-symbol order kept on ties
    return out


def _level_diff(old: dict[float, float], new: dict[float, float]) -> list[list[str]]:
    """Diff-depth levels turning top-N ``old`` into ``new`` (absolute qty, 0 removes)."""
    out = [[_dec(p), _dec(q)] for p, q in new.items() if old.get(p) != q]
    out.extend([_dec(p), "0"] for p in old if p not in new)
    return out


# --------------------------------------------------------------------------- dispatch
def merge(timelines: Iterable[list[Recorded]]) -> list[Recorded]:
    """Merge time-ordered timelines by receive time (stable)."""
    return list(heapq.merge(*timelines, key=lambda r: r.recv_ms))


def expand(spec: str | Path) -> list[Path]:
    """A path spec: a file, a directory, a glob, or several of these joined by ``,``."""
    out: list[Path] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        hits = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        if not hits:
            raise RecordingError(f"{part}: no such recording")
        out.extend(Path(h) for h in hits)
    return out


def _read_one(p: Path) -> list[Recorded]:
    if p.is_dir():
        if (p / "raw").is_dir() or any(p.glob("date=*")):
            return read_raw_partitions(p)
        ws = sorted(p.glob("*.ws.*"))
        gz = sorted(p.glob("*.gz"))
        if ws:
            return merge(read_cryptofeed(w) for w in ws)
        if gz:
            return merge(read_hftbacktest(g) for g in gz)
        raise RecordingError(f"{p}: directory holds no known recording")
    if not p.exists():
        raise RecordingError(f"{p}: no such recording")
    if ".ws." in p.name:
        return read_cryptofeed(p)
    if p.suffix == ".gz":
        return read_hftbacktest(p)
    raise RecordingError(f"{p}: unknown recording format (want *.ws.*, *.gz or a raw/ dir)")


def load(spec: str | Path) -> list[Recorded]:
    """Every message of the recording(s) named by ``spec``, merged in receive-time order."""
    from ..storage.objectstore import is_url

    if is_url(str(spec)):               # our raw partitions in an s3:// lake
        return merge([read_raw_partitions(str(spec))])
    paths = expand(spec)
    if not paths:
        raise RecordingError(f"{spec!r}: empty recording spec")
    return merge(_read_one(p) for p in paths)


def iter_kind(recs: Iterable[Recorded], kind: str, symbol: str | None = None) -> Iterator[Recorded]:
    for r in recs:
        if r.kind == kind and (symbol is None or r.symbol == symbol):
            yield r


def symbols_of(recs: Iterable[Recorded]) -> tuple[str, ...]:
    return tuple(sorted({r.symbol for r in recs if r.kind != KIND_OTHER}))


__all__ = ["Recorded", "RecordingError", "load", "expand", "merge", "read_cryptofeed",
           "read_hftbacktest", "read_raw_partitions", "trade_to_agg", "stream_kind",
           "iter_kind", "symbols_of", "KIND_TRADE", "KIND_DEPTH", "KIND_TICKER",
           "KIND_SNAPSHOT", "KIND_OTHER"]


def _main() -> None:  # pragma: no cover - quick inspection helper
    import sys
    from collections import Counter
    recs = load(sys.argv[1])
    print(len(recs), Counter((r.symbol, r.kind) for r in recs))


if __name__ == "__main__":  # pragma: no cover
    _main()
