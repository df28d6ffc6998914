"""Write → audit → publish one date × symbol partition (docs/dq.md, "The publish rule").

:func:`gate_partition` is the one flow behind the Dagster multi-asset and ``ofi-cvd-harvest
derive``: finish what crashed runs left (:func:`.publish.recover`), compute the five tables once
(:func:`ofi_cvd_harvest.signals.derive.derive_all`), stage them under ``.staging/`` (fsynced,
where readers do not glob), evaluate every DoD check of the registry on the staged tables and the
raw partition, then

* every blocking check passed → publish the wanted tables (all or none) and clear the
  partition's quarantine;
* a blocking check failed → quarantine the wanted tables with ``dq.json``; ``ofi_cvd/`` stays
  byte-for-byte as it was; unless the caller accepts the failure explicitly
  (``publish_on_fail``), which publishes and records who accepted what in ``dq.json``.

A subset (``kinds``, e.g. ``--select cvd``) still computes and checks the whole partition — the
tables share one computation and the checks judge the partition — and publishes or quarantines
only the wanted tables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import polars as pl

from ..dq.base import MetricResult
from ..schemas import DERIVED_KINDS
from ..settings import Settings
from ..storage.fs import Storage
from . import checks as registry
from . import verdict as vd
from . import objectarea
from .area import RunStage, local_root, quarantine_dir
from .checks import DodCheck
from .publish import pause_point, publish, quarantine, recover

log = logging.getLogger(__name__)

PUBLISHED, ACCEPTED, QUARANTINED, DRY_RUN = "published", "accepted", "quarantined", "dry-run"


@dataclass
class GateOutcome:
    date: str
    symbol: str
    status: str                                   # published | accepted | quarantined | dry-run
    kinds: list[str]
    results: list[tuple[DodCheck, MetricResult]]
    described: dict[str, Any] = field(default_factory=dict)         # describe(kind, df) per wanted kind
    paths: dict[str, str] = field(default_factory=dict)             # published or quarantined
    verdict: dict | None = None
    verdict_path: str | None = None
    recovered: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return vd.failed_blocking(self.results)

    @property
    def warnings(self) -> list[str]:
        return [c.name for c, r in self.results if not c.blocking and r.passed is False]

    @property
    def published(self) -> bool:
        return self.status in (PUBLISHED, ACCEPTED)

    def summary(self) -> str:
        """One line for a terminal or a run log."""
        what = ",".join(self.kinds)
        if self.status == PUBLISHED:
            text = f"published {what}"
        elif self.status == ACCEPTED:
            text = f"published {what} ACCEPTED despite failed checks {', '.join(self.failed)}"
        elif self.status == QUARANTINED:
            text = (f"QUARANTINED {what} ({', '.join(self.failed)} failed) -> "
                    f"{self.verdict_path}")
        else:
            text = "dry run: " + (f"would quarantine ({', '.join(self.failed)} failed)"
                                  if self.failed else "would publish")
        if self.warnings:
            text += f"; warnings: {', '.join(self.warnings)}"
        return text


def _kinds(kinds: Iterable[str] | None) -> list[str]:
    wanted = list(DERIVED_KINDS) if kinds is None else list(kinds)
    bad = [k for k in wanted if k not in DERIVED_KINDS]
    if bad or not wanted:
        raise ValueError(f"unknown or no derived kinds {bad or wanted} (of {', '.join(DERIVED_KINDS)})")
    return [k for k in DERIVED_KINDS if k in wanted]   # the fixed publishing order


def row_count(kind: str, df: pl.DataFrame) -> int:
    return df.height


def gate_partition(storage: Storage, settings: Settings, date: str, symbol: str,
                   kinds: Iterable[str] | None = None, *, accept: vd.Acceptance | None = None,
                   run: str = "", dry_run: bool = False,
                   describe: Callable[[str, pl.DataFrame], Any] = row_count) -> GateOutcome:
    """Derive, stage, check and publish (or quarantine) one partition; see the module doc.
    ``run`` names who derived it (a Dagster run id, ``ofi-cvd-harvest derive``) in ``dq.json``.
    ``describe(kind, table)`` is called for each wanted table once it is staged (the caller's
    summary, e.g. materialisation metadata); the frames are freed before the checks run, so
    the checks' memory does not add to the tables'."""
    from ..signals.derive import derive_all, to_arrow   # lazy: the registry needs no polars math

    wanted = _kinds(kinds)
    t = {"start": time.perf_counter()}
    if storage.local:
        root = local_root(storage)
        recovered = recover(root)
        make_stage, do_publish, do_quarantine = (lambda: RunStage(root, date, symbol)), publish, quarantine
    else:   # an s3:// lake: one PUT per table instead of a rename (gate/objectarea.py)
        root = objectarea.LakeUrl(storage.url)
        recovered = objectarea.recover(storage)
        make_stage = lambda: objectarea.ObjectRunStage(storage, date, symbol)  # noqa: E731
        do_publish, do_quarantine = objectarea.publish, objectarea.quarantine
    if recovered["rolled_forward"] or recovered["removed"]:
        log.warning("gate: finished what crashed runs left: %s", recovered)
    tables = derive_all(storage, settings, date, symbol)
    t["derive"] = time.perf_counter()
    with make_stage() as stage:
        for kind in DERIVED_KINDS:
            storage.write_parquet(stage.table_rel(kind), to_arrow(kind, tables[kind]))
        described = {k: describe(k, tables[k]) for k in wanted}
        del tables                                # the frames' memory goes before the checks
        t["stage"] = time.perf_counter()
        pause_point("staged")
        results = registry.evaluate(root, settings, date, symbol, derived_root=stage.derived_root)
        t["checks"] = time.perf_counter()
        out = GateOutcome(date, symbol, DRY_RUN, wanted, results, described, recovered=recovered)
        failed = out.failed
        if dry_run:
            pass
        elif not failed:
            out.status, out.paths = PUBLISHED, do_publish(stage, wanted)
        else:
            previous = vd.read(root, date, symbol)
            if accept is not None:
                record = vd.build(date, symbol, results, status=ACCEPTED, tables=wanted, run=run,
                                  previous=previous, accepted=accept.record(failed))
                out.status, out.paths = ACCEPTED, do_publish(stage, wanted, record)
            else:
                record = vd.build(date, symbol, results, status=QUARANTINED, tables=wanted,
                                  run=run, previous=previous)
                out.status, out.paths = QUARANTINED, do_quarantine(stage, wanted, record)
            out.verdict = record
            out.verdict_path = str(quarantine_dir(root, date, symbol) / vd.NAME)
    t["end"] = time.perf_counter()
    out.seconds = {"derive": t["derive"] - t["start"], "stage": t["stage"] - t["derive"],
                   "checks": t["checks"] - t["stage"], "publish": t["end"] - t["checks"]}
    log.info("gate %s|%s: %s (derive %.1f s, stage %.1f s, checks %.1f s, publish %.1f s)",
             date, symbol, out.summary(), *out.seconds.values())
    return out
