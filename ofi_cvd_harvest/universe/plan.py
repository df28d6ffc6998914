"""Cut the symbol universe into capture shards (docs/deploy.md "Capture shards"). Pure and
deterministic: the same universe, volumes and previous plan give the same plan, bit for bit.

The rule:

* **Fresh plan** (no previous plan, or the shard count changed): symbols by 24 h quote volume,
  largest first (ties: by name), each onto the lightest shard that still has room (ties: fewer
  symbols, then the shard name). This greedy "largest first onto the lightest" keeps the
  heaviest shard within one symbol's volume of the lightest (max ≤ min + largest symbol)
  whenever the room per shard is not what binds.
* **Room**: one shard is one capture process, whose connections carry at most
  ``max_streams_per_connection`` streams each; a symbol needs one stream per endpoint (aggTrade
  on ``/market``, its book stream on ``/public``), so a shard holds at most that many symbols.
  When the universe does not fit into the requested shards, more shards are made.
* **Stable updates** (a previous plan with the same shard count): symbols keep their shard —
  a capture is never moved because volumes drifted; delisted symbols leave their shard; newly
  listed ones go, largest first, onto the lightest shard with room (by today's volumes). A
  previous shard over the room (the limit was lowered) forces a fresh plan.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..protocol.vocabulary import agg_trade_stream, endpoint_of, partial_depth_stream

PLAN_VERSION = 1


def shard_name(i: int) -> str:
    """``shard-00``, ``shard-01``…: stable names, sortable as text up to 100 shards."""
    return f"shard-{i:02d}"


def shard_index(name: str) -> int | None:
    """The number of a shard name (None if ``name`` is not one)."""
    head, _, digits = name.rpartition("-")
    return int(digits) if head == "shard" and digits.isdigit() else None


def streams_per_connection(symbols: int) -> int:
    """Streams the busiest connection of a capture of ``symbols`` symbols carries (the
    capture's streams split by endpoint, protocol/streams.py)."""
    per_endpoint: dict[str, int] = {}
    for stream in (agg_trade_stream("X"), partial_depth_stream("X")):
        ep = endpoint_of(stream)
        per_endpoint[ep] = per_endpoint.get(ep, 0) + 1
    return max(per_endpoint.values()) * symbols


def room(max_streams_per_connection: int) -> int:
    """Most symbols one shard holds within the streams-per-connection limit."""
    return max(1, max_streams_per_connection // streams_per_connection(1))


@dataclass(frozen=True)
class ShardPlan:
    """Shard name -> its symbols (sorted), and the room per shard the plan was made with."""

    shards: dict[str, tuple[str, ...]]
    room: int
    notes: tuple[str, ...] = field(default=(), compare=False)

    def symbols(self) -> list[str]:
        return sorted(s for syms in self.shards.values() for s in syms)

    def shard_of(self, symbol: str) -> str | None:
        return next((n for n, syms in self.shards.items() if symbol in syms), None)

    def to_json(self) -> str:
        return json.dumps({"version": PLAN_VERSION, "room": self.room,
                           "shards": {n: list(s) for n, s in self.shards.items()}},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "ShardPlan | None":
        """The plan stored by :meth:`to_json`; None for nothing, another version or garbage
        (a sensor cursor written by another release: the next plan is then a fresh one)."""
        try:
            d = json.loads(text) if text else None
            if not isinstance(d, dict) or d.get("version") != PLAN_VERSION:
                return None
            shards = {str(n): tuple(str(s) for s in syms) for n, syms in d["shards"].items()}
            return cls(shards, int(d["room"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def _volume(volumes: Mapping[str, float], sym: str) -> float:
    v = volumes.get(sym, 0.0)
    return v if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else 0.0


def _place(order: list[str], shards: dict[str, list[str]], load: dict[str, float],
           volumes: Mapping[str, float], cap: int) -> None:
    """Largest first onto the lightest shard with room (ties: fewer symbols, then name)."""
    for sym in order:
        name = min((n for n in shards if len(shards[n]) < cap),
                   key=lambda n: (load[n], len(shards[n]), n))
        shards[name].append(sym)
        load[name] += _volume(volumes, sym)


def plan_shards(volumes: Mapping[str, float], n_shards: int, max_streams_per_connection: int,
                previous: ShardPlan | None = None) -> ShardPlan:
    """The shard plan of the universe ``volumes`` ({symbol: 24 h quote volume}; every key is a
    symbol to capture) in ``n_shards`` shards (module docstring for the rule)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1 (got {n_shards})")
    cap = room(max_streams_per_connection)
    universe = sorted(volumes)
    n = max(n_shards, math.ceil(len(universe) / cap))
    notes: list[str] = []
    if n > n_shards:
        notes.append(f"{len(universe)} symbols need {n} shards of at most {cap} symbols "
                     f"(asked for {n_shards})")
    order = sorted(universe, key=lambda s: (-_volume(volumes, s), s))
    if previous is not None and len(previous.shards) == n and all(
            len(syms) <= cap for syms in previous.shards.values()) and sorted(
            previous.shards) == [shard_name(i) for i in range(n)]:
        present = set(universe)
        shards = {name: [s for s in syms if s in present] for name, syms in previous.shards.items()}
        kept = {s for syms in shards.values() for s in syms}
        gone = sorted(set(previous.symbols()) - present)
        new = [s for s in order if s not in kept]
        if gone:
            notes.append(f"delisted: {', '.join(gone)}")
        if new:
            notes.append(f"listed: {', '.join(sorted(new))}")
    else:
        if previous is not None:
            notes.append(f"re-planned from scratch ({len(previous.shards)} -> {n} shards)")
        shards = {shard_name(i): [] for i in range(n)}
        new = order
    load = {name: sum(_volume(volumes, s) for s in syms) for name, syms in shards.items()}
    _place(new, shards, load, volumes, cap)
    return ShardPlan({name: tuple(sorted(syms)) for name, syms in shards.items()}, cap,
                     tuple(notes))


def shard_volumes(plan: ShardPlan, volumes: Mapping[str, float]) -> dict[str, float]:
    """24 h quote volume per shard."""
    return {name: sum(_volume(volumes, s) for s in syms) for name, syms in plan.shards.items()}
